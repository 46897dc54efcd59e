"""Comparison helpers and the step drivers shared by the parity tests.

Metric: for two tensors a (tested) and b (reference), ``max|a − b| / max(max|b|, tiny)``.
A failure message names the worst (parameter, key) pair, the step, and both values at the worst
element, plus the next few offenders.
"""

import torch

import nets

TINY = 1e-300
RTOL = 1e-10


def _as_f64(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.tensor(float(x), dtype=torch.float64)


def rel_err(a, b):
    a, b = _as_f64(a), _as_f64(b)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    denom = max(b.abs().max().item(), TINY)
    return (a - b).abs().max().item() / denom


def _worst_element(a, b):
    a, b = _as_f64(a).reshape(-1), _as_f64(b).reshape(-1)
    i = int((a - b).abs().argmax())
    return i, a[i].item(), b[i].item()


def compare(actual_params, actual_states, expected_params, expected_states, keys, names=None,
            rtol=RTOL, context=""):
    """Compare parameters and the given state keys; raise AssertionError naming the worst key.

    ``actual_states`` / ``expected_states``: lists of dict-like (``opt.state[p]`` or the
    reference's state dicts).  A key is compared only where the expected state has it; the
    actual state must then have it too.  Returns the worst relative error.
    """
    names = names or [f"param{i}" for i in range(len(expected_params))]
    rows = []  # (err, name, key, a, b)
    for i, name in enumerate(names):
        rows.append((rel_err(actual_params[i], expected_params[i]), name, "param",
                     actual_params[i], expected_params[i]))
        for k in keys:
            if k not in expected_states[i]:
                continue
            if k not in actual_states[i]:
                raise AssertionError(f"{context}: state of {name} lacks key {k!r} "
                                     f"(has {sorted(actual_states[i])})")
            rows.append((rel_err(actual_states[i][k], expected_states[i][k]), name, k,
                         actual_states[i][k], expected_states[i][k]))
    rows.sort(key=lambda r: -r[0])
    worst = rows[0]
    if not worst[0] <= rtol:  # also catches NaN
        idx, va, vb = _worst_element(worst[3], worst[4])
        others = ", ".join(f"{n}/{k}: {e:.3e}" for e, n, k, _, _ in rows[1:6])
        raise AssertionError(
            f"{context}: worst relative error {worst[0]:.3e} > {rtol:.0e} at {worst[1]}/{worst[2]} "
            f"(flat index {idx}: got {va!r}, expected {vb!r}); next: {others}")
    return worst[0]


# ---------------------------------------------------------------------------------------
# drivers: run an optimizer under test and a reference side by side, comparing every step
# ---------------------------------------------------------------------------------------
def net_params(net):
    names, params = zip(*net.named_parameters())
    return list(names), list(params)


def run_net_pair(make_actual, make_expected, keys, steps=100, drop=None, rtol=RTOL, seed=0,
                 on_step=None):
    """Both optimizers are ``torch.optim.Optimizer`` factories taking the named-parameter list
    ``[(name, param), ...]`` of their own copy of the net.  ``drop(step) -> set of names``
    whose gradient is set to None at that step.  Compares after every step; calls
    ``on_step(step, opt_actual, opt_expected)`` after each step if given."""
    net_a = nets.make_net(seed)
    net_b = nets.clone_net(net_a)
    names, pa = net_params(net_a)
    _, pb = net_params(net_b)
    opt_a = make_actual(list(zip(names, pa)))
    opt_b = make_expected(list(zip(names, pb)))
    worst = 0.0
    for s in range(steps):
        dropped = drop(s) if drop else set()
        for net in (net_a, net_b):
            nets.net_backward(net, s)
            for n, p in net.named_parameters():
                if n in dropped:
                    p.grad = None
        opt_a.step()
        opt_b.step()
        if on_step:
            on_step(s, opt_a, opt_b)
        worst = max(worst, compare(pa, [opt_a.state[p] for p in pa], pb,
                                   [opt_b.state[p] for p in pb], keys, names, rtol,
                                   context=f"net, after step {s + 1}"))
    return worst


def run_random_pair(make_actual, make_expected, keys, steps=100, drop=None, rtol=RTOL,
                    problem=None, on_step=None):
    """As ``run_net_pair`` on ``nets.RandomProblem``: factories take ``[(name, tensor), ...]``
    of leaf tensors; ``drop(step) -> set of indices`` without gradient at that step."""
    problem = problem or nets.RandomProblem()
    names = problem.names
    pa = [p.clone().requires_grad_(True) for p in problem.params]
    pb = [p.clone().requires_grad_(True) for p in problem.params]
    opt_a = make_actual(list(zip(names, pa)))
    opt_b = make_expected(list(zip(names, pb)))
    worst = 0.0
    for s in range(steps):
        dropped = drop(s) if drop else set()
        problem.set_grads(pa, s, dropped)
        problem.set_grads(pb, s, dropped)
        opt_a.step()
        opt_b.step()
        if on_step:
            on_step(s, opt_a, opt_b)
        worst = max(worst, compare(pa, [opt_a.state[p] for p in pa], pb,
                                   [opt_b.state[p] for p in pb], keys, names, rtol,
                                   context=f"random tensors, after step {s + 1}"))
    return worst


def run_net_vs_reference(make_actual, reference_step, keys, steps=100, drop=None, rtol=RTOL,
                         seed=0, on_step=None):
    """Optimizer under test vs a hand reference ``reference_step(names, params, grads, states)``
    (returns anything; passed to ``on_step(step, value)``)."""
    net_a = nets.make_net(seed)
    net_b = nets.clone_net(net_a)
    names, pa = net_params(net_a)
    _, pb = net_params(net_b)
    opt_a = make_actual(list(zip(names, pa)))
    states = [dict() for _ in pb]
    worst = 0.0
    for s in range(steps):
        dropped = drop(s) if drop else set()
        for net in (net_a, net_b):
            nets.net_backward(net, s)
            for n, p in net.named_parameters():
                if n in dropped:
                    p.grad = None
        grads = [None if p.grad is None else p.grad.detach().clone() for p in pb]
        opt_a.step()
        with torch.no_grad():
            out = reference_step(names, [p.data for p in pb], grads, states)
        if on_step:
            on_step(s, out)
        worst = max(worst, compare(pa, [opt_a.state[p] for p in pa], pb, states, keys, names,
                                   rtol, context=f"net, after step {s + 1}"))
    return worst


def run_random_vs_reference(make_actual, reference_step, keys, steps=100, drop=None, rtol=RTOL,
                            problem=None, on_step=None):
    problem = problem or nets.RandomProblem()
    names = problem.names
    pa = [p.clone().requires_grad_(True) for p in problem.params]
    pb = [p.clone() for p in problem.params]
    opt_a = make_actual(list(zip(names, pa)))
    states = [dict() for _ in pb]
    worst = 0.0
    for s in range(steps):
        dropped = drop(s) if drop else set()
        problem.set_grads(pa, s, dropped)
        gb = problem.grads(pb, s)
        grads = [None if i in dropped else g for i, g in enumerate(gb)]
        opt_a.step()
        out = reference_step(names, pb, grads, states)
        if on_step:
            on_step(s, out)
        worst = max(worst, compare(pa, [opt_a.state[p] for p in pa], pb, states, keys, names,
                                   rtol, context=f"random tensors, after step {s + 1}"))
    return worst


def plain(named):
    """``[(name, p), ...] -> [p, ...]`` (one param group)."""
    return [p for _, p in named]
