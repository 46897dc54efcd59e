"""K seeds of one model as a single stacked model: ``torch.func.functional_call`` + ``vmap``.

Every parameter and buffer of the K models is stacked along a new leading replica axis
(``torch.func.stack_module_state``), so a parameter of shape S becomes one leaf tensor of shape
(K, *S). The forward pass maps the model's ``functional_call`` over that axis with ``vmap`` —
or, for the layer types of the named problems, runs each layer as one kernel over all replicas
(:mod:`sandbox.training.stacked_forward`, the default where it applies) — each replica reading
its own batch; the loss is the SUM over replicas of each replica's mean batch
loss, so one ``backward`` gives every replica exactly the gradient of its own loss. The
optimizer is the same :class:`sandbox.RuleOptimizer`, with one param group carrying
``replica_dims=1``: every reduction it takes (AdamP's norms and cosines, Adai's global mean of v̂)
is per replica, so the stacked run equals K separate runs.

BatchNorm buffers are stacked too: in training mode ``F.batch_norm`` updates each replica's
``running_mean``/``running_var`` (a (K, C) tensor) in place from that replica's batch, and
``num_batches_tracked`` is a (K,) counter; evaluation uses each replica's own running statistics.
(The vmap batching rule of ``batch_norm`` accepts running statistics that carry the replica axis;
``tests/test_stacked_seeds.py`` checks the buffers against separate runs.)
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from .stacked_forward import global_hooks, native_forward, native_layers

ENGINES = ("auto", "native", "vmap")


class StackedModels:
    """K models of one architecture as stacked tensors with a leading replica axis.

    ``engine``: ``"vmap"`` maps ``functional_call`` over the replicas (any model);
    ``"native"`` runs each layer as one kernel over all replicas
    (:mod:`sandbox.training.stacked_forward`: the layer types of the named problems, faster on
    a CPU); ``"auto"`` (default) picks native where the model allows, else vmap. ``self.engine``
    says which runs.

    >>> stack = StackedModels([problem.build(s) for s in (0, 1, 2)])      # doctest: +SKIP
    >>> opt = sandbox.create("adamp", stack.param_groups(), lr=1e-3)     # doctest: +SKIP
    >>> logits = stack(x)            # x: (K, B, ...) per-replica batches, or (B, ...) shared
    """

    def __init__(self, models: Sequence[nn.Module], engine: str = "auto"):
        if engine not in ENGINES:
            raise ValueError(f"invalid engine={engine!r}: must be one of {ENGINES}")
        if not models:
            raise ValueError("StackedModels needs at least one model")
        kinds = {type(m) for m in models}
        if len(kinds) != 1:
            raise ValueError(f"all models must share one architecture; got {sorted(k.__name__ for k in kinds)}")
        self.K = len(models)
        self.template = copy.deepcopy(models[0]).to("meta")  # structure only, no storage
        params, buffers = stack_module_state(list(models))
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        self.training = True
        plan = native_layers(self.template) if engine != "vmap" else None
        if engine == "native" and plan is None:
            raise ValueError(f"engine='native' does not support {type(models[0]).__name__}: its layers are "
                             "outside sandbox.training.stacked_forward's set; use engine='vmap'")
        self._native = plan
        self.engine = "native" if plan is not None else "vmap"

    # --- the optimizer's view ---------------------------------------------------------------
    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    def param_groups(self, **hyperparams) -> list[dict]:
        """One param group of every stacked parameter, replica axis 0."""
        return [{"params": self.parameters(), "replica_dims": 1, **hyperparams}]

    def train(self, mode: bool = True) -> "StackedModels":
        self.training = mode
        self.template.train(mode)
        return self

    def eval(self) -> "StackedModels":
        return self.train(False)

    # --- forward ----------------------------------------------------------------------------
    def _call(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def __call__(self, x: Tensor, shared: bool = False) -> Tensor:
        """Logits (K, B, classes). ``x`` is (K, B, ...) — replica k reads ``x[k]`` — or, with
        ``shared=True``, (B, ...) read by every replica (evaluation on a common set)."""
        if self._native is not None and not global_hooks():
            if shared:
                x = x.unsqueeze(0).expand((self.K,) + tuple(x.shape))
            return native_forward(self._native, self.params, self.buffers, x, self.K)
        return vmap(self._call, in_dims=(0, 0, None if shared else 0),
                    randomness="different")(self.params, self.buffers, x)

    # --- single replicas --------------------------------------------------------------------
    def replica(self, k: int, like: nn.Module) -> nn.Module:
        """A copy of ``like`` (the architecture) holding replica k's parameters and buffers."""
        if not 0 <= k < self.K:
            raise IndexError(f"replica {k} out of range [0, {self.K})")
        model = copy.deepcopy(like)
        state = {name: t[k].detach().clone() for name, t in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        return model.train(self.training)

    def named_parameters(self) -> dict[str, Tensor]:
        return dict(self.params)


@torch.no_grad()
def evaluate_stacked(stack: StackedModels, x: Tensor, y: Tensor, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """Per-replica mean cross-entropy and accuracy on a common set, in eval mode: two (K,) tensors.
    ``chunk`` examples at a time (default 4096/K, at least 256: memory grows with K·chunk)."""
    chunk = chunk or max(256, 4096 // stack.K)
    was_training = stack.training
    stack.eval()
    loss = torch.zeros(stack.K, dtype=torch.float64, device=x.device)
    correct = torch.zeros(stack.K, dtype=torch.float64, device=x.device)
    for i in range(0, len(y), chunk):
        logits = stack(x[i:i + chunk], shared=True)          # (K, b, C)
        yb = y[i:i + chunk].expand(stack.K, -1)                # (K, b)
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), yb, reduction="none")  # (K, b)
        loss += ce.sum(dim=1, dtype=torch.float64)
        correct += (logits.argmax(dim=2) == yb).sum(dim=1, dtype=torch.float64)
    stack.train(was_training)
    return loss / len(y), correct / len(y)


@torch.no_grad()
def evaluate_model(model: nn.Module, x: Tensor, y: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy and accuracy of one model in eval mode: two (1,) tensors."""
    was_training = model.training
    model.eval()
    loss = torch.zeros(1, dtype=torch.float64, device=x.device)
    correct = torch.zeros(1, dtype=torch.float64, device=x.device)
    for i in range(0, len(y), chunk):
        logits = model(x[i:i + chunk])
        loss += nn.functional.cross_entropy(logits, y[i:i + chunk], reduction="sum").double()
        correct += (logits.argmax(dim=1) == y[i:i + chunk]).sum(dtype=torch.float64)
    model.train(was_training)
    return loss / len(y), correct / len(y)
