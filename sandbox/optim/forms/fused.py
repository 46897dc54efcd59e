"""Which chains have a fused CPU kernel (:mod:`sandbox.optim.kernels`), and its arguments.

Each kernel is a second form of one paper family's stages, written as straight per-row /
per-element loops (numba) and tested equal to the stages in float64, parameters and state. A
group runs a kernel only when its chain is exactly one the kernel mirrors (checked on the stage
objects and the hyperparameters, never on the rule's name) and every tensor qualifies
(:func:`tensors_qualify`); everything else runs the stages.

| kernel | mirrors |
|---|---|
| ``adam_cpu.step`` | ``scale_by_adam → [radial_projection('eps')] → add_decayed_weights → scale_by_lr`` and ``add_decayed_weights → scale_by_adam → [radial_projection('eps')] → scale_by_lr`` |
| ``sgd_cpu.step`` | ``heavy_ball → radial_projection → add_decayed_weights(1/(1−μ)) → scale_by_lr`` (SGDP) and ``add_decayed_weights → heavy_ball → radial_projection → scale_by_lr`` (SGD + projection) |
| ``adai_cpu.reduce/update`` | ``[add_decayed_weights →] adaptive_inertia → [add_decayed_weights →] scale_by_lr`` |
| ``rootfree_cpu.rfadamw_step`` | ``scale_by_rootfree_adam → add_decayed_weights → scale_by_lr`` |
| ``rootfree_cpu.rfrmsprop_step`` | ``precondition_rootfree → add_decayed_weights → heavy_ball(zeros) → scale_by_lr`` |
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import Tensor

from ..stages import (
    adaptive_inertia, add_decayed_weights, heavy_ball, precondition_rootfree, radial_projection,
    scale_by_adam, scale_by_lr, scale_by_rootfree_adam,
)

KERNEL_DTYPES = (torch.float32, torch.float64)


def _types(stages) -> tuple:
    return tuple(type(s) for s in stages)


def _proj(hp, stage: radial_projection) -> dict:
    return {"project": True, "delta": hp["delta"], "wd_ratio": hp["wd_ratio"],
            "project_momentum": bool(hp.get("project_momentum", False)), "eps": hp[stage.eps_key]}


def _plain_decay(s) -> bool:
    return type(s) is add_decayed_weights and not s.sgdp_scaling


def match(stages: tuple, hp: Mapping[str, Any]) -> Optional[tuple[str, dict]]:
    """(family, keyword arguments of its kernel) when the chain has a fused kernel, else None."""
    t = _types(stages)
    common = {"maximize": bool(hp["maximize"])}
    if t[-1:] != (scale_by_lr,):
        return None
    body, body_t = stages[:-1], t[:-1]
    # --- Adam family ---------------------------------------------------------------------------
    if scale_by_adam in body_t and not hp.get("amsgrad", False):
        i = body_t.index(scale_by_adam)
        decay_first = i == 1 and _plain_decay(body[0])
        rest = body[i + 1:]
        proj = [s for s in rest if type(s) is radial_projection]
        if proj and proj[0].eps_key != "eps":
            return None
        if decay_first and tuple(map(type, rest)) in ((), (radial_projection,)):
            coupled = True
        elif i == 0 and tuple(map(type, rest)) in ((add_decayed_weights,),
                                                   (radial_projection, add_decayed_weights)) \
                and _plain_decay(rest[-1]):
            coupled = False
        else:
            return None
        b1, b2 = hp["betas"]
        kw = {"lr": hp["lr"], "beta1": b1, "beta2": b2, "eps": hp["eps"],
              "weight_decay": hp["weight_decay"], "decoupled": not coupled,
              "nesterov": bool(hp.get("nesterov", False)), "project": bool(proj),
              "delta": hp["delta"] if proj else 0.1, "wd_ratio": hp["wd_ratio"] if proj else 1.0}
        return "adam", {**kw, **common}
    # --- SGD family ----------------------------------------------------------------------------
    if body_t == (heavy_ball, radial_projection, add_decayed_weights) and body[2].sgdp_scaling:
        hb, pr = body[0], body[1]
        kw = {"coupled": False, "sgdp_decay_scaling": True}
    elif body_t == (add_decayed_weights, heavy_ball, radial_projection) and _plain_decay(body[0]):
        hb, pr = body[1], body[2]
        kw = {"coupled": True, "sgdp_decay_scaling": False}
    else:
        hb = pr = None
    if hb is not None:
        return "sgd", {**kw, **_proj(hp, pr), "lr": hp["lr"], "momentum": hp["momentum"],
                       "dampening": hp.get("dampening", 0.0), "weight_decay": hp["weight_decay"],
                       "nesterov": bool(hp.get("nesterov", False)), "first": hb.first,
                       "buffer_key": hb.key, **common}
    # --- Adai ----------------------------------------------------------------------------------
    if body_t in ((adaptive_inertia, add_decayed_weights), (add_decayed_weights, adaptive_inertia)):
        dec = body[0] if body_t[0] is add_decayed_weights else body[1]
        if not _plain_decay(dec):
            return None
        beta0, beta2 = hp["betas"]
        return "adai", {"lr": hp["lr"], "beta0": beta0, "beta2": beta2, "eps": hp["eps"],
                        "weight_decay": hp["weight_decay"],
                        "decoupled": body_t[0] is adaptive_inertia, **common}
    # --- Root-free -----------------------------------------------------------------------------
    if body_t == (scale_by_rootfree_adam, add_decayed_weights) and _plain_decay(body[1]):
        b1, b2 = hp["betas"]
        return "rfadamw", {"lr": hp["lr"], "beta1": b1, "beta2": b2, "eps": hp["eps"],
                           "weight_decay": hp["weight_decay"], "batch_size": hp["batch_size"],
                           "bias_correction": bool(hp["bias_correction"]), **common}
    if body_t == (precondition_rootfree, add_decayed_weights, heavy_ball) and _plain_decay(body[1]):
        hb = body[2]
        if hb.first != "zeros" or hb.key != "momentum_buffer" or hp.get("nesterov", False) \
                or hp.get("dampening", 0.0) != 0:
            return None
        return "rfrmsprop", {"lr": hp["lr"], "momentum": hp["momentum"], "lr_cov": hp["lr_cov"],
                             "eps": hp["eps"], "weight_decay": hp["weight_decay"],
                             "batch_size": hp["batch_size"], **common}
    return None


MODULES = {"adam": "adam_cpu", "sgd": "sgd_cpu", "adai": "adai_cpu", "rfadamw": "rootfree_cpu",
           "rfrmsprop": "rootfree_cpu"}
_AVAILABLE: dict[str, bool] = {}


def available(family: str) -> bool:
    """Whether the family's kernel module imports (numba installed); checked once per process."""
    if family not in _AVAILABLE:
        import importlib

        try:
            importlib.import_module(f"sandbox.optim.kernels.{MODULES[family]}")
            _AVAILABLE[family] = True
        except ImportError:
            _AVAILABLE[family] = False
    return _AVAILABLE[family]


def _plain(t: Tensor) -> bool:
    return t.is_contiguous() and type(t.data) is Tensor


def tensors_qualify(params: list[Tensor], states: list[dict]) -> bool:
    """CPU, float32/float64 (one dtype), contiguous plain tensors (no DTensor, no subclass), with
    contiguous gradients and state (the kernels index raw memory)."""
    dtype = params[0].dtype
    if dtype not in KERNEL_DTYPES:
        return False
    for p, s in zip(params, states):
        if p.device.type != "cpu" or p.dtype != dtype or not _plain(p) or not _plain(p.grad) \
                or p.grad.dtype != dtype:
            return False
        for v in s.values():
            if isinstance(v, Tensor) and v.dim() > 0 and not (v.is_contiguous() and v.dtype == dtype):
                return False
    return True


def run(family: str, kw: dict, params: list[Tensor], states: list[dict], rd: int) -> list:
    """Run a non-reducing family's kernel; returns per-parameter projection codes (or [])."""
    from .. import kernels

    ps = [p.detach() for p in params]  # (the kernel modules are imported by available())
    gs = [p.grad.detach() for p in params]
    if family == "adam":
        return kernels.adam_cpu.step(ps, gs, states, replica_dims=rd, **kw)
    if family == "sgd":
        return kernels.sgd_cpu.step(ps, gs, states, replica_dims=rd, **kw)
    if family == "rfadamw":
        kernels.rootfree_cpu.rfadamw_step(ps, gs, states, **kw)
        return []
    if family == "rfrmsprop":
        kernels.rootfree_cpu.rfrmsprop_step(ps, gs, states, **kw)
        return []
    raise ValueError(f"unknown kernel family {family!r}")


_REDUCE_KEYS = ("beta2", "weight_decay", "decoupled", "maximize")


def adai_reduce(kw: dict, params: list[Tensor], states: list[dict], rd: int):
    from .. import kernels

    return kernels.adai_cpu.reduce([p.detach() for p in params], [p.grad.detach() for p in params],
                                   states, replica_dims=rd, **{k: kw[k] for k in _REDUCE_KEYS})


def adai_update(kw: dict, params: list[Tensor], states: list[dict], rd: int, vbar: Tensor) -> None:
    from .. import kernels

    upd = {k: kw[k] for k in ("lr", "beta0", "beta2", "eps", "weight_decay", "decoupled", "maximize")}
    kernels.adai_cpu.update([p.detach() for p in params], [p.grad.detach() for p in params], states,
                            vbar, replica_dims=rd, **upd)
