"""Everything a step checks before its first write, and what ``load_state_dict`` refuses.

A step either completes for every parameter or changes nothing: the adapter calls
:func:`check_step` after the gradients were found finite and before any state is created or any
tensor written. Every refusal names the parameter (group and index, shape), the value and what
is allowed.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor

# Hyperparameters whose value multiplies or divides the parameter's numbers: each must be
# representable in the parameter's dtype (1e39 is inf in float32).
NUMERIC = ("lr", "weight_decay", "eps", "proj_eps", "delta", "momentum", "lr_cov")


def where(gi: int, pi: int, p: Tensor) -> str:
    return f"group {gi} param {pi} (shape {tuple(p.shape)}, {str(p.dtype).replace('torch.', '')})"


def required_state(stages: Iterable, hp: Mapping[str, Any]) -> set[str]:
    """The state keys a parameter that has stepped must hold under this chain."""
    keys: set[str] = set()
    for s in stages:
        need = getattr(s, "required_state", None)
        keys |= set(need(hp)) if need is not None else set()
    return keys


def check_reductions(rule: str, chain, placed: str) -> None:
    """Every reduction a stage of ``chain`` declares is one the core performs (ops sum/max, scopes
    a tensor or all parameters); ``placed`` names the parameter and its placement."""
    from .stages.base import OPS, SCOPES

    for s in chain:
        for r in s.reductions or ():
            op, scope = tuple(r)
            if op not in OPS or scope not in SCOPES:
                raise ValueError(
                    f"{rule}: stage {s.name!r} declares the reduction ({op!r}, {scope!r}), which the "
                    f"core cannot distribute (ops {OPS}, scopes {SCOPES}); {placed}. Refused before "
                    f"any write.")


def check_sharded_chain(rule: str, chain, p: Tensor, spec, gi: int, pi: int) -> None:
    """On a Shard(0) parameter, a stage that declares a reduction the core cannot distribute, or
    an old-style reducing stage without declarations, would take per-shard statistics: refused.
    (A stage that declares nothing runs on DTensors: :func:`sandbox.optim.forms.rounds._on_dtensors`.)"""
    placed = f"{where(gi, pi, p)}, sharded as {tuple(spec.placements)} over {spec.world} ranks"
    for s in chain:
        if s.reductions is None and s.reduces:
            raise ValueError(
                f"{rule}: stage {s.name!r} reduces over all parameters the old way (reduce/update) "
                f"and declares no reductions, and {placed}. Declare `reductions = (('sum', "
                f"'global'),)` if its update is element-wise, or write it as a generator that yields "
                f"its requests (see sandbox.optim.stages.base). Refused before any write.")
    check_reductions(rule, chain, placed)


def check_hyper_range(rule: str, group: Mapping[str, Any], dtype: torch.dtype, gi: int) -> None:
    """Refuse a hyperparameter that overflows the parameter's dtype."""
    if not dtype.is_floating_point:
        return
    big = torch.finfo(dtype).max
    for k in NUMERIC:
        v = group.get(k)
        if v is None or isinstance(v, Tensor):  # a tensor's value would need a host read
            continue
        x = float(v)
        if abs(x) > big:
            raise ValueError(
                f"{rule}: {k}={x!r} in group {gi} overflows the parameters' dtype "
                f"{str(dtype).replace('torch.', '')} (largest finite value {big:g}); pass a value "
                f"≤ {big:g} or use a wider dtype")


def check_parameter(rule: str, p: Tensor, gi: int, pi: int) -> None:
    if p.is_complex():
        raise TypeError(
            f"{rule}: {where(gi, pi, p)} is complex; the sandbox's rules are defined for real "
            f"parameters. Step torch.view_as_real(p) (a real view with a trailing axis of 2) instead.")
    if not p.is_floating_point():
        raise TypeError(f"{rule}: {where(gi, pi, p)} is not a floating-point tensor")


def check_state(rule: str, p: Tensor, state: Mapping[str, Any], required: set[str], gi: int,
                pi: int) -> None:
    """Every state tensor matches its parameter (shape, strided layout, floating dtype, device)
    and a parameter that has stepped holds every key its chain needs."""
    if not state:
        return
    for k, v in state.items():
        if k == "step":
            if isinstance(v, Tensor) and v.numel() != 1:
                raise ValueError(f"{rule}: state 'step' of {where(gi, pi, p)} has {v.numel()} "
                                 f"elements; a step counter is one number")
            continue
        if not isinstance(v, Tensor):
            continue
        if v.layout != torch.strided:
            raise ValueError(f"{rule}: state {k!r} of {where(gi, pi, p)} has layout {v.layout}; "
                             f"only dense (strided) state is allowed")
        if v.shape != p.shape:
            raise ValueError(
                f"{rule}: state {k!r} of {where(gi, pi, p)} has shape {tuple(v.shape)}; it must "
                f"have the parameter's shape. Was the parameter resized after its state was made, "
                f"or the checkpoint saved from another model? Clear its state "
                f"(optimizer.state[p].clear()) to start it afresh.")
        if not v.is_floating_point():
            raise ValueError(f"{rule}: state {k!r} of {where(gi, pi, p)} has dtype {v.dtype}; "
                             f"it must be floating point")
        if v.device != p.device:
            raise ValueError(f"{rule}: state {k!r} of {where(gi, pi, p)} is on {v.device}, the "
                             f"parameter on {p.device}")
    check_state_layout(rule, p, state, gi, pi)
    missing = sorted(required - state.keys())
    if missing:
        raise ValueError(
            f"{rule}: the state of {where(gi, pi, p)} lacks {missing}, which the rule needs once a "
            f"parameter has stepped (it holds {sorted(state)}). The checkpoint was saved by "
            f"another rule or options; resuming it would run a different algorithm.")


def check_state_layout(rule: str, p: Tensor, state: Mapping[str, Any], gi: int, pi: int) -> None:
    """A sharded (DTensor) parameter's state tensors are DTensors laid out like it; a plain
    parameter's are plain tensors. (One number broadcast to the parameter's shape, a stride-0
    view, is the same on every rank: it may stay a plain tensor.)"""
    from .distributed import is_dtensor

    sharded = is_dtensor(p)
    for k, v in state.items():
        if not isinstance(v, Tensor) or k == "step" or (
                sharded and not is_dtensor(v) and not any(v.stride())):
            continue
        if is_dtensor(v) != sharded:
            raise ValueError(
                f"{rule}: state {k!r} of {where(gi, pi, p)} is "
                f"{'a DTensor' if is_dtensor(v) else 'a plain tensor'}, the parameter "
                f"{'a DTensor' if sharded else 'a plain tensor'}; load a sharded optimizer's state "
                f"with torch.distributed.checkpoint's get/set_optimizer_state_dict")
        if sharded and (tuple(v.placements) != tuple(p.placements) or v.device_mesh != p.device_mesh):
            raise ValueError(
                f"{rule}: state {k!r} of {where(gi, pi, p)} has placements {tuple(v.placements)}, "
                f"the parameter {tuple(p.placements)}; state must be sharded like its parameter")


def normalise_step(state: dict) -> None:
    """A numeric ``step`` (older torch.optim checkpoints) becomes a CPU float32 tensor, as torch
    converts it."""
    v = state.get("step")
    if v is not None and not isinstance(v, Tensor):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"state 'step' must be a count ≥ 0, got {v!r}")
        state["step"] = torch.tensor(float(v), dtype=torch.float32)
    elif isinstance(v, Tensor) and (v.dtype != torch.float32 or v.device.type != "cpu"):
        state["step"] = v.detach().to(device="cpu", dtype=torch.float32).reshape(())


_NARROW = (torch.float16, torch.bfloat16)  # gradients whose norm is taken in float32


def grads_finite(grads: list[Tensor], nonfinite: str = "raise") -> bool:
    """Whether every gradient is finite (always True for ``nonfinite='ignore'``).

    One list kernel per precision and one host sync: a NaN or ±inf anywhere makes that tensor's
    2-norm non-finite. A finite 2-norm proves the tensor finite; a non-finite one may also be an
    overflow of the sum of squares (|g| ≳ 1.8e19 in float32), so it is confirmed element-wise.
    16-bit gradients are normed in float32. The 2-norm, not the 1-norm: torch's CPU list norm is
    vectorised for ord 2 only."""
    if nonfinite == "ignore" or not grads:
        return True
    if len({g.device for g in grads}) == 1:
        narrow = [g for g in grads if g.dtype in _NARROW]
        wide = [g for g in grads if g.dtype not in _NARROW] if narrow else grads
        norms = list(torch._foreach_norm(wide, 2)) if wide else []
        if narrow:
            norms += torch._foreach_norm(narrow, 2, dtype=torch.float32)
        if bool(torch.stack(norms).isfinite().all()):  # stack promotes mixed dtypes
            return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def check_saved_groups(rule, state_dict: Mapping[str, Any], skip_keys: tuple) -> None:
    """The hyperparameters of every group of a checkpoint about to be loaded, validated by
    ``rule`` (a RuleSpec); a torch.optim group whose ``decoupled_weight_decay`` names the other
    algorithm is refused. Raises ValueError naming the group."""
    torch_only = {"decoupled_weight_decay": lambda: rule.decay == "decoupled"}
    for gi, g in enumerate(state_dict.get("param_groups", [])):
        values = {k: v for k, v in g.items() if k not in skip_keys}
        for k, expected in torch_only.items():  # (the rule's traits only where asked: an import)
            if k in values and bool(values.pop(k)) != expected():
                raise ValueError(
                    f"{rule.name}: the checkpoint's group {gi} has {k}={g[k]!r}, which "
                    f"is another algorithm (decay here is {rule.decay}); refused")
        try:
            rule.validate(values)
        except ValueError as e:
            raise ValueError(f"{e} (in group {gi} of the checkpoint being loaded)") from None


def nonfinite_message(rule: str, param_groups, ranks: list | None = None) -> str:
    """The error of a step refused for non-finite gradients: which tensors (on this rank), and,
    sharded, which ranks flagged it (every rank refuses the step together)."""
    from .distributed import local

    where = [
        f"group {i} param {j} (shape {tuple(p.shape)})"
        for i, group in enumerate(param_groups)
        for j, p in enumerate(group["params"])
        if p.grad is not None and not bool(torch.isfinite(local(p.grad)).all())
    ]
    here = f"{len(where)} tensor(s): {', '.join(where)}"
    if ranks is not None:  # sharded: the flag of the first round
        here = (f"the shards of rank(s) {ranks} (on this rank: "
                f"{here if where else 'none'}); every rank refuses this step together")
    return (f"{rule}: step refused, non-finite gradient in {here}. Parameters and "
            f"state are unchanged. Pass nonfinite='skip' to skip such steps instead.")
