"""Ground truth of scale invariance, read from the architecture (the module graph).

A weight w is scale-invariant when the loss satisfies f(c·w) = f(w) for every c > 0 (AdamP §2,
Heo et al., ICLR 2021). In a network this holds when every use of w reaches the loss only through a
normalisation (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm), and the way from w to the
normaliser's input is *positively homogeneous of degree one* in w:

    z(c·w) = c·z(w)  for c > 0,     N(c·z) = N(z)        ⇒ the loss does not see c.

Method (``method='fx'``, the default): trace the model with ``torch.fx`` and follow, from each
weight (the ``weight`` of a Linear/Conv module, or a parameter read with ``get_attr``), every node
that depends on it. Each node takes the path to one of three states:

- ``homog``: degree-1 homogeneous in w. Kept by ReLU/LeakyReLU/PReLU, max/avg pooling, dropout,
  reshapes/flatten/permute/indexing, dtype casts, padding with zeros, products and quotients by
  tensors that do not depend on w, and linear maps (F.linear/conv/matmul) whose other operands do
  not depend on w.
- ``affine``: homogeneous plus a per-channel constant (a Linear/Conv with a bias). Kept only by
  identity-like nodes (Identity, casts, contiguous); a normaliser that centres over axes along
  which the bias is constant removes it: BatchNorm (statistics over batch and space, per channel),
  InstanceNorm, GroupNorm with one channel per group, LayerNorm over spatial axes of a conv output.
  A LayerNorm over the features of a Linear, an RMSNorm (no centring), a nonlinearity or dropout
  in between keep the bias, so such weights are NOT scale-invariant on their own (only jointly with
  their bias).
- failure: anything else (an addition such as a residual connection, a concatenation, a node with
  two inputs that depend on w, an op the analysis does not know, reaching the output) — the weight
  is then reported NOT scale-invariant.

Limits: the verdict is for training mode (BatchNorm in eval mode uses running statistics and is
not scale-invariant); unknown ops are treated conservatively as breaking invariance (a false
"not invariant", never a false "invariant"); models that ``torch.fx`` cannot trace (data-dependent
control flow) fall back to ``method='hooks'``.

Fallback (``method='hooks'``): one forward pass on ``example_input`` with forward hooks on every
leaf module, recording which tensor object each module read and wrote. A weight module is marked
invariant when its output tensor is read by a normaliser, directly or through leaf modules of the
homogeneous kinds above (bias: directly only, under the same centring rule). Functional ops between
modules are invisible to hooks, so a chain through ``F.relu`` is not followed (conservative), and
other uses of the same tensor cannot be ruled out (a residual that reads the conv output as well
would be missed): use it only when fx fails.

:func:`numerical_scale_invariance` is an independent check by evaluation (f(2w) = f(w) to
round-off, in training mode); the tests compare the two on a zoo of architectures.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
NORMS = BATCH_NORMS + INSTANCE_NORMS + (nn.LayerNorm, nn.GroupNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
WEIGHT_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
                  nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
HOMOGENEOUS_MODULES = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Flatten, nn.Unflatten, nn.ZeroPad2d, nn.Identity,
)
IDENTITY_MODULES = (nn.Identity,)
HOMOGENEOUS_FUNCTIONS = {
    F.relu, torch.relu, F.leaky_relu, F.prelu, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, torch.flatten, torch.reshape, torch.permute,
    torch.transpose, torch.squeeze, torch.unsqueeze, operator.getitem, torch.max_pool2d,
}
HOMOGENEOUS_METHODS = {"relu", "view", "reshape", "flatten", "permute", "transpose", "t",
                       "squeeze", "unsqueeze", "contiguous", "clone", "float", "double", "half",
                       "bfloat16", "to", "type_as", "view_as", "reshape_as", "expand", "expand_as",
                       "unflatten", "movedim", "chunk", "split", "unbind"}
IDENTITY_METHODS = {"contiguous", "clone", "float", "double", "half", "bfloat16", "to", "type_as"}
LINEAR_FUNCTIONS = {F.linear, F.conv1d, F.conv2d, F.conv3d, torch.matmul, operator.matmul,
                    torch.mm, torch.bmm, torch.einsum}
PRODUCTS = {operator.mul, torch.mul, "mul"}
QUOTIENTS = {operator.truediv, torch.div, torch.true_divide, "div"}
NORM_FUNCTIONS = {F.batch_norm: "batch", F.instance_norm: "instance", F.layer_norm: "layer",
                  F.group_norm: "group"}


@dataclass(frozen=True)
class Invariance:
    """The verdict for one parameter: ``scale_invariant``, the ``norm`` it feeds (module name or
    function), the ``method`` ('fx', 'hooks' or 'shape' for vectors) and a human ``reason``."""

    scale_invariant: bool
    reason: str
    norm: Optional[str] = None
    method: str = "fx"


def _norm_removes_bias(norm: nn.Module | str, source: Optional[nn.Module]) -> bool:
    """Does this normaliser centre over axes along which a per-channel bias is constant?"""
    if isinstance(norm, str):  # functional form: batch/instance centre per channel
        return norm in ("batch", "instance")
    if isinstance(norm, BATCH_NORMS + INSTANCE_NORMS):
        return True
    if isinstance(norm, nn.GroupNorm):
        return norm.num_groups == norm.num_channels
    if isinstance(norm, nn.LayerNorm) and isinstance(source, WEIGHT_MODULES[1:]):
        spatial = source.weight.ndim - 2  # a conv output is (N, C, *spatial)
        return len(norm.normalized_shape) <= spatial
    return False


def _has_bias(module: nn.Module) -> bool:
    return getattr(module, "bias", None) is not None


def _fx_verdicts(model: nn.Module) -> dict[str, Invariance]:
    """Trace with torch.fx and judge every weight (see the module docstring)."""
    gm = torch.fx.symbolic_trace(model)
    modules = dict(gm.named_modules())
    params = dict(model.named_parameters())
    sources: dict[str, list] = {}  # parameter name -> [(node, start state, source module)]
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], WEIGHT_MODULES):
            m = modules[node.target]
            name = f"{node.target}.weight" if node.target else "weight"
            sources.setdefault(name, []).append((node, "affine" if _has_bias(m) else "homog", m))
        elif node.op == "get_attr" and node.target in params:
            sources.setdefault(node.target, []).append((node, "param", None))
    out = {}
    for name, starts in sources.items():
        out[name] = _follow(starts, modules)
    return out


def _flat(node) -> list:
    items: list = []
    torch.fx.node.map_arg((node.args, node.kwargs), lambda n: items.append(n))
    return items


def _follow(starts: list, modules: dict) -> Invariance:
    """Propagate path states from the sources through the graph in topological order."""
    state: dict = {}
    source_module = starts[0][2]
    norms_hit: list[str] = []
    for node, s, _ in starts:
        state[node] = s
    graph_nodes = list(starts[0][0].graph.nodes)
    first = min(graph_nodes.index(n) for n, _, _ in starts)
    for node in graph_nodes[first:]:
        if node in state and any(node is n for n, _, _ in starts):
            continue
        tainted = [a for a in _flat(node) if a in state]
        if not tainted:
            continue
        if node.op == "output":
            return Invariance(False, f"reaches the output without a normalisation (via {tainted[0].name})")
        if len(tainted) > 1 or _flat(node).count(tainted[0]) > 1:
            return Invariance(False, f"'{node.name}' combines two paths that depend on the weight")
        s_in = state[tainted[0]]
        s_out, why = _transition(node, tainted[0], s_in, modules, source_module)
        if s_out == "fail":
            return Invariance(False, why)
        if s_out == "norm":
            norms_hit.append(why)
            continue  # downstream of the normaliser the scale is gone
        state[node] = s_out
    if not norms_hit:
        return Invariance(False, "never reaches a normalisation")
    return Invariance(True, "feeds " + ", ".join(sorted(set(norms_hit))), ", ".join(sorted(set(norms_hit))))


def _transition(node, arg, s_in: str, modules: dict, source) -> tuple[str, str]:
    """(new state, explanation) for one node whose single input ``arg`` depends on the weight."""
    if s_in == "param":  # a raw parameter: it must enter a linear map as an operand
        if node.op == "call_function" and node.target in LINEAR_FUNCTIONS:
            bias = node.kwargs.get("bias", node.args[2] if len(node.args) > 2 else None)
            return ("affine" if bias is not None else "homog"), ""
        if node.op == "call_method" and node.target in ("matmul", "mm"):
            return "homog", ""
        if node.op == "call_function" and node.target in PRODUCTS | QUOTIENTS:
            if node.target in QUOTIENTS and node.args[0] is not arg:
                return "fail", f"'{node.name}' divides by the weight"
            return "param", ""
        if node.op == "call_method" and node.target in HOMOGENEOUS_METHODS | {"mul", "div"}:
            return "param", ""
        return "fail", f"the parameter is used by '{node.name}' ({node.target}), not a linear map"
    if node.op == "call_module":
        m = modules[node.target]
        if isinstance(m, NORMS):
            if s_in == "affine" and not _norm_removes_bias(m, source):
                return "fail", (f"its bias reaches {type(m).__name__} '{node.target}', which does "
                                "not remove a per-channel constant")
            return "norm", node.target
        if isinstance(m, IDENTITY_MODULES):
            return s_in, ""
        if isinstance(m, HOMOGENEOUS_MODULES):
            if s_in == "affine":
                return "fail", f"its bias passes through '{node.target}' before any normalisation"
            return "homog", ""
        return "fail", f"passes through '{node.target}' ({type(m).__name__}), not homogeneous"
    target = node.target
    if node.op == "call_function" and target in NORM_FUNCTIONS:
        if node.args[0] is not arg:
            return "fail", f"used as a parameter of the normalisation '{node.name}'"
        kind = NORM_FUNCTIONS[target]
        if s_in == "affine" and not _norm_removes_bias(kind, source):
            return "fail", f"its bias reaches {kind} norm '{node.name}'"
        return "norm", f"{kind}_norm:{node.name}"
    identity = (node.op == "call_method" and target in IDENTITY_METHODS)
    if identity:
        return s_in, ""
    homogeneous = ((node.op == "call_function" and target in HOMOGENEOUS_FUNCTIONS)
                   or (node.op == "call_method" and target in HOMOGENEOUS_METHODS))
    linear = node.op == "call_function" and target in LINEAR_FUNCTIONS
    product = target in PRODUCTS and node.op in ("call_function", "call_method")
    quotient = target in QUOTIENTS and node.op in ("call_function", "call_method")
    if quotient and (node.args[0] is not arg):
        return "fail", f"'{node.name}' divides by a quantity that depends on the weight"
    if homogeneous or linear or product or quotient:
        if s_in == "affine":
            return "fail", f"its bias passes through '{node.name}' before any normalisation"
        if linear and (node.kwargs.get("bias") is not None or len(node.args) > 2 and node.args[2] is not None):
            return "fail", f"'{node.name}' adds a bias before any normalisation"
        return "homog", ""
    return "fail", f"passes through '{node.name}' ({getattr(target, '__name__', target)}), not known to be homogeneous"


def _hook_verdicts(model: nn.Module, example_input) -> dict[str, Invariance]:
    """Forward hooks on leaf modules: follow tensor objects from weight modules to norms."""
    reads: dict[int, list] = {}  # id(tensor) -> modules that read it
    writes: dict[nn.Module, int] = {}
    handles, keep = [], []

    def hook(module, inputs, output):
        for x in inputs:
            if torch.is_tensor(x):
                reads.setdefault(id(x), []).append(module)
                keep.append(x)
        if torch.is_tensor(output):
            writes[module] = id(output)
            keep.append(output)

    for m in model.modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*example_input) if isinstance(example_input, tuple) else model(example_input)
    finally:
        for h in handles:
            h.remove()
    names = {m: n for n, m in model.named_modules()}
    out = {}
    for m, name in names.items():
        if not isinstance(m, WEIGHT_MODULES) or m not in writes:
            continue
        s, cur, verdict = ("affine" if _has_bias(m) else "homog"), m, None
        while verdict is None:
            users = reads.get(writes.get(cur, -1), [])
            if len(users) != 1:
                verdict = Invariance(False, "output not read by exactly one module", method="hooks")
                break
            nxt = users[0]
            if isinstance(nxt, NORMS):
                ok = s == "homog" or _norm_removes_bias(nxt, m)
                verdict = Invariance(ok, f"feeds {names[nxt]}" if ok else "bias not removed",
                                     names[nxt] if ok else None, "hooks")
            elif isinstance(nxt, HOMOGENEOUS_MODULES) and (s == "homog" or isinstance(nxt, nn.Identity)):
                cur = nxt
            else:
                verdict = Invariance(False, f"passes through {names[nxt]}", method="hooks")
        out[f"{name}.weight" if name else "weight"] = verdict
    return out


def scale_invariance_ground_truth(model: nn.Module, example_input=None,
                                  method: str = "auto") -> dict[str, Invariance]:
    """For every parameter of ``model`` (by name), whether the loss is invariant to its scale.

    ``method``: 'fx', 'hooks' (needs ``example_input``) or 'auto' (fx, else hooks). Vectors
    (biases, normalisation affine parameters) are reported not invariant ('shape'); a weight the
    analysis never reached is reported not invariant with the reason.
    """
    if method not in ("auto", "fx", "hooks"):
        raise ValueError(f"invalid method={method!r}: must be 'auto', 'fx' or 'hooks'")
    verdicts: dict[str, Invariance] = {}
    if method in ("auto", "fx"):
        try:
            verdicts = _fx_verdicts(model)
        except Exception as e:  # torch.fx raises many kinds of errors on untraceable code
            if method == "fx":
                raise
            if example_input is None:
                raise ValueError(f"torch.fx cannot trace {type(model).__name__} ({e}); pass "
                                 "example_input to use the forward-hook fallback") from e
            method = "hooks"
    if method == "hooks":
        if example_input is None:
            raise ValueError("method='hooks' needs example_input (one batch for a forward pass)")
        verdicts = _hook_verdicts(model, example_input)
    out = {}
    for name, p in model.named_parameters():
        if p.ndim < 2:
            out[name] = Invariance(False, "a vector (bias or normalisation affine parameter)",
                                   method="shape")
        else:
            out[name] = verdicts.get(name, Invariance(False, "not reached by the analysis",
                                                      method=method if method != "auto" else "fx"))
    return out


def numerical_scale_invariance(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor],
                               factor: float = 2.0, rtol: float = 1e-9) -> dict[str, bool]:
    """Independent check by evaluation: is ``loss_fn(model)`` unchanged when one weight (ndim ≥ 2)
    is multiplied by ``factor``? Runs on a float64 deep copy in training mode with every
    normaliser's ``eps`` set to ~0 (the eps makes real nets invariant only up to O(eps/variance));
    ``loss_fn`` must be deterministic (no dropout) and return a scalar or tensor of outputs."""
    net = copy.deepcopy(model).double().train()
    for m in net.modules():  # the eps of a normaliser breaks invariance at O(eps/var): remove it
        if isinstance(m, NORMS):
            m.eps = 1e-300  # torch refuses 0 in training mode; this is 0 to float64 round-off
    base_state = copy.deepcopy(net.state_dict())

    def evaluate():
        net.load_state_dict(base_state)  # BatchNorm running stats must not drift between calls
        with torch.no_grad():
            return loss_fn(net).double()

    ref = evaluate()
    out = {}
    for name, p in net.named_parameters():
        if p.ndim < 2:
            continue
        net.load_state_dict(base_state)
        with torch.no_grad():
            p.mul_(factor)
            val = loss_fn(net).double()
        out[name] = bool(torch.allclose(val, ref, rtol=rtol, atol=rtol * float(ref.abs().max())))
    return out
