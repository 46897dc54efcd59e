"""The forward pass of K stacked models without ``vmap``: each layer as ONE kernel over all replicas.

:class:`sandbox.training.StackedModels` maps ``functional_call`` over the replica axis with
``vmap`` — general, but its batching rules add work where it hurts on a CPU: a stacked
BatchNorm runs as a plain normalisation followed by a separate per-replica scale and shift
(four extra elementwise passes, forward and backward), and ``vmap``'s linear layers produce
weight gradients in a transposed layout that ``AccumulateGrad`` copies. For the layer types of
:mod:`sandbox.problems.models` this module runs the same network with torch's own kernels on
layouts in which the replica axis is free:

- **features** layout ``(K, F, B)`` (replica, feature, example) for linear layers:
  ``Linear`` is ``bmm(W, h)`` (``baddbmm`` with a bias), whose weight gradient
  ``grad · hᵀ`` comes out in W's own (K, out, in) layout; a ``BatchNorm1d`` over these features
  is ``F.batch_norm`` on the free view ``(1, K·C, B)`` (K·C channels, statistics over the B
  examples), affine transform fused;
- **channels** layout ``(B, K·C, *spatial)`` for convolutions: ``Conv`` is the grouped
  convolution with ``K·groups`` groups and weight ``(K·C_out, C_in/groups, *k)`` — a free view
  of the stacked (K, C_out, C_in/groups, *k) weight — and ``BatchNorm``/``MaxPool``/``ReLU``
  act per channel as they are; ``Flatten`` turns it into the features layout (a view).

Running statistics are the stacked (K, C) buffers seen as (K·C,) views, so ``F.batch_norm``
updates each replica's own in place, exactly as the unstacked modules do; ``num_batches_tracked``
counts as in :class:`torch.nn.BatchNorm1d`. The replicas never mix: every kernel above keeps
replica k's numbers apart (``tests/test_stacked_forward.py`` checks the values, gradients and
buffers against the ``vmap`` engine in float64, in training and evaluation mode).

Models outside this set (other layer types, BatchNorm with cumulative averaging
``momentum=None``, padding modes other than zeros, dropout…, or a layer on a layout it is not
written for, e.g. a Linear on a non-flat input) are run by ``vmap``:
:func:`native_layers` returns ``None`` for them. LayerNorm is left to ``vmap`` on purpose: its
statistics run over the features of one example, which the features layout keeps strided; as
``F.group_norm`` with K groups on a transposed copy it was measured 1.5–2× SLOWER than vmap
(teacher-student, K = 16, 2 CPU threads: 11.1 against 4.7 ms per step).

Measured side by side with a loop over K = 16 models (``python -m sandbox.benchmarks.stacked_seeds
--engine native|vmap``, 2 CPU threads, sgd/adamp/adai): digits-bnmlp 4.7–5.1× native against
2.5–3.3× vmap (2.2–3.9 against 5.7–7.6 ms per stacked step); teacher-student-bn 3.3–3.9× against
2.0–2.8×; with 1 thread, digits 3.0–3.7× native. On mnist1d-bncnn native is ~20% faster than vmap
but both lose to the loop: mkldnn's grouped convolution (K groups) runs at about half the speed
of K dense ones (which is why that problem does not stack seeds on a CPU).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_CONVS = (nn.Conv1d, nn.Conv2d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d)
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def global_hooks() -> bool:
    """Whether hooks for every module are registered (``nn.modules.module.register_module_*``):
    the native forward calls no module, so a stack defers to vmap while there are any (checked at
    each call: they can come and go)."""
    from torch.nn.modules import module as M

    return bool(M._global_forward_hooks or M._global_forward_pre_hooks
                or M._global_backward_hooks or M._global_backward_pre_hooks)


def _plain(m: nn.Module) -> bool:
    """No hook on the module: the native forward calls no module, so it would skip them."""
    return not any(getattr(m, h, None) for h in _HOOKS)


def _supported(m: nn.Module) -> bool:
    # exact types: a subclass (a parametrized layer such as weight_norm's, a custom forward)
    # computes something else from other parameters
    if type(m) not in (nn.Linear, nn.ReLU, nn.Identity, nn.Flatten) + _BATCH_NORMS + _CONVS + _POOLS \
            or not _plain(m):
        return False
    if isinstance(m, (nn.Linear, nn.ReLU, nn.Identity)):
        return True
    if isinstance(m, nn.Flatten):
        return m.start_dim == 1 and m.end_dim == -1
    if isinstance(m, _BATCH_NORMS):
        return m.momentum is not None  # cumulative averaging needs a per-replica factor
    if isinstance(m, _CONVS):
        return m.padding_mode == "zeros"
    if isinstance(m, _POOLS):
        return not m.return_indices
    return False


def native_layers(template: nn.Module) -> tuple[tuple[int, ...], list[tuple[str, nn.Module]]] | None:
    """``(input_shape, [(prefix, layer), ...])`` when ``template`` is a reshape followed by a
    ``body`` Sequential of supported layers (the :class:`sandbox.problems.models.NormNet` form),
    else ``None`` (the caller uses ``vmap``)."""
    body, shape = getattr(template, "body", None), getattr(template, "input_shape", None)
    if (type(body) is not nn.Sequential or shape is None or type(template).forward is not _normnet_forward()
            or not (_plain(template) and _plain(body))):
        return None
    layers = [(f"body.{name}.", m) for name, m in body.named_children()]
    if not all(_supported(m) for _, m in layers) or not _layouts_fit(tuple(shape), layers):
        return None
    return tuple(shape), layers


def _layouts_fit(shape: tuple[int, ...], layers) -> bool:
    """Whether every layer meets the layout it is written for: ``Linear`` the features layout
    (a 1-D input or after ``Flatten``: on more axes it acts on the last one only), ``Conv``/
    ``MaxPool`` the channels layout with their number of spatial axes, ``BatchNorm1d`` features
    or one spatial axis, ``BatchNorm2d`` two."""
    spatial = len(shape) - 1  # 0: the features layout
    for _, m in layers:
        if isinstance(m, nn.Flatten):
            spatial = 0
        elif isinstance(m, nn.Linear):
            if spatial:
                return False
        elif isinstance(m, _BATCH_NORMS + _CONVS + _POOLS):
            one = isinstance(m, (nn.BatchNorm1d, nn.Conv1d, nn.MaxPool1d))
            if spatial != (1 if one else 2) and not (spatial == 0 and isinstance(m, nn.BatchNorm1d)):
                return False
    return True


def _normnet_forward():
    from sandbox.problems.models import NormNet

    return NormNet.forward


# --- layouts -------------------------------------------------------------------------------------
def _to_features(h: Tensor, layout: str, K: int) -> Tensor:
    """(K, F, B) from either layout (channels: Flatten's C-major order, as ``nn.Flatten``)."""
    if layout == "features":
        return h
    B = h.shape[0]
    return h.reshape(B, K, -1).permute(1, 2, 0)


def _input(x: Tensor, shape: Sequence[int], K: int) -> tuple[Tensor, str]:
    """Per-replica inputs (K, B, ...) reshaped to ``shape`` per example, in the layout the first
    layers want: features for a 1-D shape, channels otherwise."""
    B = x.shape[1]
    if len(shape) == 1:
        return x.reshape(K, B, shape[0]).transpose(1, 2), "features"
    return x.reshape((K, B) + tuple(shape)).transpose(0, 1).reshape((B, K * shape[0]) + tuple(shape[1:])), "channels"


def _batch_norm(m: nn.Module, h: Tensor, layout: str, P: dict, Bu: dict, pre: str, K: int) -> Tensor:
    """``nn.BatchNorm*`` semantics (the module's training flag, running statistics, counter) over
    K·C channels."""
    training = m.training  # the template's flag, as functional_call reads it (a frozen BN stays so)
    rm, rv = Bu.get(pre + "running_mean"), Bu.get(pre + "running_var")
    if training and m.track_running_stats and (pre + "num_batches_tracked") in Bu:
        Bu[pre + "num_batches_tracked"].add_(1)
    flat = lambda t: None if t is None else t.reshape(-1)  # noqa: E731  (K, C) → (K·C,) view
    use_batch_stats = training or (rm is None and rv is None)
    if training and not m.track_running_stats:  # buffers kept but not updated, as nn does
        rm = rv = None
    args = (flat(rm), flat(rv), flat(P.get(pre + "weight")), flat(P.get(pre + "bias")),
            use_batch_stats, m.momentum, m.eps)
    if layout == "channels":
        return F.batch_norm(h, *args)
    Kk, C, B = h.shape
    return F.batch_norm(h.reshape(1, K * C, B), *args).view(K, C, B)


def _conv(m: nn.Module, h: Tensor, P: dict, pre: str, K: int) -> Tensor:
    w, b = P[pre + "weight"], P.get(pre + "bias")
    w = w.reshape((K * w.shape[1],) + tuple(w.shape[2:]))
    conv = F.conv1d if isinstance(m, nn.Conv1d) else F.conv2d
    return conv(h, w, None if b is None else b.reshape(-1), m.stride, m.padding, m.dilation,
                K * m.groups)


def _pool(m: nn.Module, h: Tensor) -> Tensor:
    pool = F.max_pool1d if isinstance(m, nn.MaxPool1d) else F.max_pool2d
    return pool(h, m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)


def native_forward(plan, params: dict, buffers: dict, x: Tensor, K: int) -> Tensor:
    """Logits (K, B, ...) of the K stacked models on per-replica inputs ``x`` (K, B, ...);
    ``plan`` from :func:`native_layers`. Same numbers as ``vmap(functional_call)``: each layer
    in its own training mode (the template's, which ``StackedModels.train`` sets)."""
    shape, layers = plan
    h, layout = _input(x, shape, K)
    for pre, m in layers:
        if isinstance(m, nn.Linear):  # on the features layout (:func:`_layouts_fit`)
            W, b = params[pre + "weight"], params.get(pre + "bias")
            h = torch.bmm(W, h) if b is None else torch.baddbmm(b.unsqueeze(-1), W, h)
        elif isinstance(m, _BATCH_NORMS):
            h = _batch_norm(m, h, layout, params, buffers, pre, K)
        elif isinstance(m, _CONVS):
            h = _conv(m, h, params, pre, K)
        elif isinstance(m, _POOLS):
            h = _pool(m, h)
        elif isinstance(m, nn.ReLU):
            h = torch.relu(h)
        elif isinstance(m, nn.Flatten):
            h, layout = _to_features(h, layout, K), "features"
        # nn.Identity: nothing
    if layout == "features":
        return h.transpose(1, 2)                                   # (K, B, F)
    B = h.shape[0]
    return h.reshape((B, K, h.shape[1] // K) + tuple(h.shape[2:])).transpose(0, 1)

