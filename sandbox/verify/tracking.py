"""Run a registry optimizer on a batched toy and keep the per-step, per-replica quantities the
exact identities need (no full trajectories in memory: norms, update norms, gradient norms).

For replica ``i`` and step ``t`` (w_t → w_{t+1}):
``r_sq[t, i] = ‖w_t‖²`` (t = 0..T), ``update_sq[t, i] = ‖w_{t+1} − w_t‖²``,
``grad_sq[t, i] = ‖g_t‖²`` (the raw gradient the optimizer saw), ``radial[t, i] = ⟨w_t, w_{t+1}⟩``,
``fired[t, i]``: the projection acted on that replica at that step (AdamP's test passed; False
for rules without a projection). Norms are over one replica's whole tensor.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

import sandbox


def replica_rows(x: Tensor, replica_dims: int) -> Tensor:
    """``(*R, *item)`` → ``(prod R, prod item)``."""
    n = int(np.prod(x.shape[:replica_dims])) if replica_dims else 1
    return x.reshape(n, -1)


# The implementation the toy checks step with: the per-tensor reference loop, the rules'
# canonical form (the fast paths are tested equal to it in float64 by the optimizer library's own
# tests), and on these small replica tensors as fast as the fast paths without their
# compilation on first use (numba kernels).
IMPL = "reference"


def create(rule: str, params, **hp):
    """``sandbox.create`` with :data:`IMPL` (unless ``hp`` names one)."""
    return sandbox.create(rule, params, **{"impl": IMPL, **hp})


def new_optimizer(rule: str, toy, hp: dict, prime: Callable | None = None):
    """``create(rule, toy.param_groups(), **hp)``; ``prime(opt, w)`` may then set initial state
    (e.g. a momentum buffer or a root-free v_0) before the first step."""
    opt = create(rule, toy.param_groups(), **hp)
    if prime is not None:
        prime(opt, toy.w)
    return opt


def prime_state(opt, param, values: dict, hp: dict | None = None) -> None:
    """Give ``param`` the initial state ``values`` (key → tensor) before its first step.

    The optimizer checks that a parameter with state holds every key its chain needs once it has
    stepped; the other keys are therefore created at a fresh start's values — ``step`` 0 and
    zero tensors (every such key of the rules primed here: momentum buffers, first moments)."""
    spec = opt.rule if hasattr(opt.rule, "stages") else sandbox.info(str(opt.rule))
    full = {**spec.defaults, **opt.param_groups[0], **(hp or {})}
    need = set()
    for stage in spec.stages(full):
        need |= set(stage.required_state(full))
    state = opt.state[param]
    for key in sorted(need - set(values)):
        state[key] = (torch.tensor(0.0, dtype=torch.float32) if key == "step"
                      else torch.zeros_like(param))
    state.update({k: v.clone() for k, v in values.items()})


def track(toy, opt, steps: int, lr_at: Callable[[int], float] | None = None,
          replica_dims: int = 1, shrink: float = 1.0) -> dict[str, np.ndarray]:
    """Step ``opt`` on ``toy`` ``steps`` times (``toy.fill_grad()`` then ``opt.step()``) and
    return the per-step arrays described in the module docstring (numpy, float64).

    ``lr_at(t)``, if given, sets the (single) group's learning rate before step t.
    ``shrink`` = a makes ``update_sq`` the squared norm of w_{t+1} − a·w_t (the step once a
    predicted decay w ← a·w is taken out).
    """
    w = toy.w
    rows = lambda x: replica_rows(x, replica_dims)  # noqa: E731
    n = rows(w).shape[0]
    out = {k: torch.empty((steps + (k == "r_sq"), n), dtype=torch.float64, device=w.device)
           for k in ("r_sq", "update_sq", "grad_sq", "radial")}
    fired = torch.zeros((steps, n), dtype=torch.bool, device=w.device)
    out["r_sq"][0] = (rows(w) ** 2).sum(-1)
    for t in range(steps):
        if lr_at is not None:
            opt.param_groups[0]["lr"] = float(lr_at(t))
        before = rows(w).clone()
        g = toy.fill_grad()
        opt.step()
        after = rows(w)
        out["grad_sq"][t] = (rows(g) ** 2).sum(-1)
        out["update_sq"][t] = ((after - shrink * before) ** 2).sum(-1)
        out["radial"][t] = (after * before).sum(-1)
        out["r_sq"][t + 1] = (after ** 2).sum(-1)
        code = opt.last_info.get(w, {}).get("projection")
        if code is not None:
            fired[t] = code.reshape(-1).to(torch.bool)
    res = {k: v.cpu().numpy().T for k, v in out.items()}  # (replicas, time)
    res["fired"] = fired.cpu().numpy().T
    return res


def angle_between(a: Tensor, b: Tensor) -> Tensor:
    """Angle (radians) between matching rows of ``a`` and ``b``; atan2 form, accurate near 0."""
    b_hat = b / b.norm(dim=-1, keepdim=True)
    along = (a * b_hat).sum(-1)
    perp = (a - b_hat * along.unsqueeze(-1)).norm(dim=-1)
    return torch.atan2(perp, along)
