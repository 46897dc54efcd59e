"""The projected rules remove the radial component of the update exactly where the projection
fires: sgdp, adamp, adaip, adaiwp, rfadamwp, rfrmspropp and `sgd` with project=True.

Problem: the random tensors with row norms ~1e3 (so the eps in the official
θ̂ = θ/(‖θ‖ + eps) changes ⟨θ̂, u⟩ by < 1e-11 relative) and "leaky" gradients: on the
`channel_*` / `layer_*` tensors the gradient keeps a radial part of 0.3x AdamP's threshold, so the
projection fires (channel view on `channel_*`, layer view on `layer_*`) but even plain SGD's update
has a radial part that must be removed.  weight_decay = 0, so Δθ is the projected direction.

1. test_radial_component_removed: over 30 steps, for every tensor where the spec's test fires
   (computed here from θ_t and the raw g_t), max_rows |⟨θ_row/‖θ_row‖, Δθ_row⟩| / ‖Δθ_row‖
   ≤ 1e-9 in the firing view (Δθ = θ_{t+1} − θ_t is a difference of O(1e3) numbers, so ~1e-12
   of round-off is expected).  The same measure on the un-projected base rule is > 1e-6 (the
   test can fail).
2. test_first_step_is_projected_base_step: from the same initial state, step 1 of the projected
   rule equals step 1 of its base rule (project=False) projected in the view the spec selects,
   and is identical where nothing fires (1-D tensors; plain tensors on steps where no view fires).
"""

import pytest

import nets
import references as ref
import sandbox
from compare import compare

SCALE = 1e3
LEAK = 0.3
TOL = 1e-9

RULES = {
    # id: (name, hyperparameters); the base rule is the same with project=False
    "sgd+project": ("sgd", dict(lr=0.05, momentum=0.9, project=True)),
    "sgd+project-nesterov": ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, project=True)),
    "sgdp": ("sgdp", dict(lr=0.05, momentum=0.9)),
    "sgdp-nesterov": ("sgdp", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "adamp": ("adamp", dict(lr=1e-2)),
    "adamp-nesterov": ("adamp", dict(lr=1e-2, nesterov=True)),
    "adaip": ("adaip", dict(lr=0.1)),
    "adaiwp": ("adaiwp", dict(lr=0.1)),
    "rfadamwp": ("rfadamwp", dict(lr=0.05, batch_size=16)),
    "rfadamwp-bc": ("rfadamwp", dict(lr=2.0, batch_size=16, bias_correction=True)),  # v̂ ≈ 1e3·v at t=1
    "rfrmspropp": ("rfrmspropp", dict(lr=0.01, batch_size=16)),
}


def _run(name, hp, steps):
    """Yield (step, names, θ_before, g, Δθ) for each step of `name` on the leaky problem."""
    prob = nets.RandomProblem(scale=SCALE, leak=LEAK)
    ps = [p.clone().requires_grad_(True) for p in prob.params]
    opt = sandbox.create(name, ps, **hp)
    for s in range(steps):
        gs = prob.set_grads(ps, s)
        before = [p.detach().clone() for p in ps]
        opt.step()
        yield s, prob.names, before, gs, [p.detach() - b for p, b in zip(ps, before)]


def _max_radial(name, hp, steps):
    worst, where, fired = 0.0, None, {"channel": 0, "layer": 0}
    for s, names, before, gs, deltas in _run(name, hp, steps):
        for n, th, g, d in zip(names, before, gs, deltas):
            view = ref.projection_view(th, g)
            if view is None:
                continue
            fired[view] += 1
            r = ref.radial_fraction(th, d, view)
            if r > worst:
                worst, where = r, (s + 1, n, view)
    return worst, where, fired


@pytest.mark.parametrize("rule", list(RULES))
def test_radial_component_removed(rule):
    name, hp = RULES[rule]
    worst, where, fired = _max_radial(name, hp, steps=30)
    assert fired["channel"] >= 30 and fired["layer"] >= 30, fired
    assert worst <= TOL, (f"{rule}: radial fraction {worst:.3e} > {TOL:.0e} at step {where[0]}, "
                          f"{where[1]} ({where[2]} view)")
    base_worst, _, _ = _max_radial(name, {**hp, "project": False}, steps=30)
    assert base_worst > 1e-6, f"the un-projected {name} has no radial part: the test is void"


@pytest.mark.parametrize("rule", list(RULES))
def test_first_step_is_projected_base_step(rule):
    name, hp = RULES[rule]
    (_, names, before, gs, d_proj), = list(_run(name, hp, 1))
    (_, _, _, _, d_base), = list(_run(name, {**hp, "project": False}, 1))
    views = [ref.projection_view(th, g) for th, g in zip(before, gs)]
    assert {"channel", "layer", None} <= set(views)
    expected = [ref.project_radial(th, d, v) for th, d, v in zip(before, d_base, views)]
    compare(d_proj, [{}] * len(names), expected, [{}] * len(names), [],
            names=[f"{n} ({v} view)" for n, v in zip(names, views)], rtol=TOL,
            context=f"{rule}: step-1 update vs projected {name}(project=False) update")
