"""theory.schedules against direct numpy simulation of SGDM, AdamW, AdamP, Lion and their corrected
forms on the noise-driven toy under warm-up + cosine, cosine and step schedules, and against the
sandbox's adamw/adamc on sandbox.toys.NoiseDrivenToy with a torch LR scheduler.

Tolerances fixed before the runs: r_t 5%, Delta_t and ||g_t||/||w_t|| 10%, at every step after
3/(1-beta) steps (beta: the momentum's memory; Lion: beta2) where gamma_t > 0. The rise of
||g||/||w|| is compared on series smoothed over 1/(1-beta) steps (the raw max/min of a noisy rms is
biased up by a few %): uncorrected rules rise (> 1.5 predicted and measured), corrected rules stay
flat (< 1.1 predicted and measured).
"""
import math

import numpy as np
import pytest
import torch

import sandbox
from sandbox.toys import NoiseDrivenToy
from theory.homogeneity import RuleTraits
from theory.schedules import NotCovered, integrate_schedule, late_rise, schedule, steady_grad_ratio_sgd

D, R = 64, 256
ADAMW = RuleTraits(0, 0.9, "ema", decay="decoupled", name="adamw")
ADAMP = RuleTraits(0, 0.9, "ema", projected=True, decay="decoupled", name="adamp")
SGDM = RuleTraits(1, 0.9, "heavy_ball", decay="coupled", name="sgd")


def _tang(x, w):
    wh = w / np.linalg.norm(w, axis=1, keepdims=True)
    return x - wh * (wh * x).sum(1, keepdims=True)


def _angle(w, wn):
    wh = w / np.linalg.norm(w, axis=1, keepdims=True)
    par = (wh * wn).sum(1)
    return np.arctan2(np.linalg.norm(wn - wh * par[:, None], axis=1), par)


def simulate(rule, gamma, lam, d, r0, corrected=False, betas=(0.9, 0.99), mom=0.9, wd_ratio=0.1,
             seed=0, replicas=R):
    """rms r_t, Delta_t, ||g_t||/||w_t|| of the rule on the toy (torch semantics: SGD's L2 in the
    buffer, AdamW's decoupled decay, AdamP's projection firing every step on the toy)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((replicas, d))
    w *= r0 / np.linalg.norm(w, axis=1, keepdims=True)
    b1, b2 = betas
    m, v, buf = np.zeros_like(w), np.zeros_like(w), None
    T = len(gamma)
    rs, ds, gr = np.empty(T), np.empty(T), np.empty(T)
    for t in range(T):
        lr, c = gamma[t], (gamma[t] / gamma.max() if corrected else 1.0)
        r = np.linalg.norm(w, axis=1, keepdims=True)
        g = _tang(rng.standard_normal(w.shape), w) / r
        rs[t] = np.sqrt(np.mean(r ** 2))
        gr[t] = np.sqrt(np.mean((g ** 2).sum(1) / r[:, 0] ** 2))
        if rule == "sgdm":
            dp = g + lam * c * w
            buf = dp.copy() if buf is None else mom * buf + dp
            wn = w - lr * buf
        elif rule in ("adamw", "adamp"):
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            step = (m / (1 - b1 ** (t + 1))) / (np.sqrt(v / (1 - b2 ** (t + 1))) + 1e-12)
            s = 1.0
            if rule == "adamp":
                step, s = _tang(step, w), wd_ratio
            wn = w * (1 - lr * lam * c * s) - lr * step
        else:  # lion
            u = np.sign(b1 * m + (1 - b1) * g)
            m = b2 * m + (1 - b2) * g
            wn = w * (1 - lr * lam * c) - lr * u
        ds[t] = np.sqrt(np.mean(_angle(w, wn) ** 2))
        w = wn
    return rs, ds, gr


def _smooth(x, n):
    return np.convolve(x, np.ones(n) / n, mode="valid")


def _rise(gr, gamma, n, tail=0.1):
    """late_rise on series smoothed over n steps (same definition as theory.schedules.late_rise)."""
    s = _smooth(gr, n)
    g = gamma[n - 1:]
    peak_end = int(np.nonzero(g >= 0.999 * gamma.max())[0][-1]) if (g >= 0.999 * gamma.max()).any() else 0
    return s[int(len(s) * (1 - tail)):].max() / s[peak_end:].min()


CASES = [  # name, traits, schedule, lam, d, r0, extra, memory beta
    ("adamw", ADAMW, ("warmup_cosine", 3000, 0.05, dict(warmup=100)), 0.05, D, 2.0, {}, 0.9),
    ("adamp", ADAMP, ("warmup_cosine", 3000, 0.05, dict(warmup=100)), 0.05, D, 2.0, {}, 0.9),
    ("sgdm", SGDM, ("warmup_cosine", 3000, 0.1, dict(warmup=100)), 5e-3, D, 8.0, {}, 0.9),
    ("sgdm", SGDM, ("step", 3000, 0.1, dict(milestones=(1000, 2000), factor=0.3)), 5e-3, D, 8.0, {}, 0.9),
    ("lion", ADAMW, ("cosine", 8000, 2e-3, {}), 0.1, 32, 3.0, dict(sign_betas=(0.9, 0.99)), 0.99),
]


def _id(c):
    return f"{c[0]}-{c[2][0]}"


@pytest.mark.parametrize("corrected", [False, True], ids=["plain", "corrected"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_trajectories_match_direct_simulation(case, corrected):
    name, traits, (kind, steps, peak, kw), lam, d, r0, extra, bmem = case
    sched = schedule(kind, steps, peak, **kw)
    beta2 = None if "sign_betas" in extra else 0.99
    pred = integrate_schedule(traits, sched, lam, d, r0, corrected=corrected, beta2=beta2, **extra)
    rs, ds, gr = simulate(name, sched.gamma, lam, d, r0, corrected=corrected)
    ok = (np.arange(steps) >= int(3 / (1 - bmem))) & (sched.gamma > 0)
    np.testing.assert_allclose(rs[ok], pred.r[ok], rtol=0.05)
    np.testing.assert_allclose(ds[ok], pred.delta[ok], rtol=0.10)
    np.testing.assert_allclose(gr[ok], pred.grad_ratio[ok], rtol=0.10)
    n = int(1 / (1 - bmem))
    rise_pred, rise_sim = late_rise(pred), _rise(gr, sched.gamma, n)
    if corrected:  # Defazio's claim: no late rise with the corrected decay
        assert rise_pred < 1.1 and rise_sim < 1.1
        late = sched.gamma > 0.05 * peak  # Delta_t ∝ gamma_t once r sits at its constant target
        late &= np.arange(steps) > steps // 2
        ratio = pred.delta[late] / sched.gamma[late]
        assert ratio.max() / ratio.min() < 1.05
    elif name in ("adamw", "sgdm"):  # ... and the rise without it
        assert rise_pred > 1.5 and rise_sim > 1.5


def test_projection_mutes_the_rise_by_lag_not_by_correction():
    sched = schedule("warmup_cosine", 3000, 0.05, warmup=100)
    w = integrate_schedule(ADAMW, sched, 0.05, D, 2.0, beta2=0.99)
    p = integrate_schedule(ADAMP, sched, 0.05, D, 2.0, beta2=0.99)
    assert late_rise(p) < late_rise(w) - 0.5
    assert np.median(p.tau) > 5 * np.median(w.tau)  # 1/wd_ratio times AdamW's lag
    # a run much longer than AdamP's lag: the rise returns
    long = schedule("warmup_cosine", 60000, 0.05, warmup=100)
    assert late_rise(integrate_schedule(ADAMP, long, 0.05, D, 2.0, beta2=0.99)) > 1.5


def test_sgd_quasi_static_limit_is_defazios_ratio():
    sched = schedule("constant", 20000, 0.05)
    tr = integrate_schedule(RuleTraits(1, decay="coupled", name="sgd"), sched, 1e-3, D, 2.0)
    assert tr.grad_ratio[-1] == pytest.approx(steady_grad_ratio_sgd(0.05, 1e-3), rel=0.01)


def test_sandbox_adamw_and_adamc_on_the_toy_follow_the_prediction():
    lam, r0, steps, peak, warm = 0.05, 2.0, 2000, 0.05, 100
    sched = schedule("warmup_cosine", steps, peak, warmup=warm)
    for name, corrected in (("adamw", False), ("adamc", True)):
        toy = NoiseDrivenToy(d=D, replicas=R, r0=r0, seed=11)
        extra = {"normalized": True} if name == "adamc" else {}
        opt = sandbox.create(name, toy.param_groups(**extra), lr=peak, weight_decay=lam, betas=(0.9, 0.99))
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: sched.gamma[min(t, steps - 1)] / peak)
        rs, ds = np.empty(steps), np.empty(steps)
        for t in range(steps):
            w0 = toy.w.detach().clone().numpy()
            rs[t] = math.sqrt(float((toy.w ** 2).sum(1).mean()))
            toy.fill_grad()
            opt.step()
            sch.step()
            ds[t] = np.sqrt(np.mean(_angle(w0, toy.w.detach().numpy()) ** 2))
        pred = integrate_schedule(ADAMW, sched, lam, D, r0, corrected=corrected, beta2=0.99)
        ok = np.arange(steps) >= 30
        np.testing.assert_allclose(rs[ok], pred.r[ok], rtol=0.05, err_msg=name)
        np.testing.assert_allclose(ds[ok], pred.delta[ok], rtol=0.10, err_msg=name)


def test_what_is_not_covered_is_refused():
    with pytest.raises(NotCovered, match="not covered"):
        schedule("cyclic", 100, 0.1)
    ok = schedule("cosine", 100, 0.1)
    with pytest.raises(NotCovered, match="custom sequence"):
        integrate_schedule(ADAMW, ok.gamma, 0.01, D)
    for traits, msg in [(RuleTraits(-1, 0.9, "ema", decay="decoupled"), "homogeneity"),
                        (RuleTraits(1, 0.9, "heavy_ball", nesterov=True), "Nesterov"),
                        (RuleTraits(0, 0.9, "ema", decay="coupled"), "preconditioner")]:
        with pytest.raises(NotCovered, match=msg):
            integrate_schedule(traits, ok, 0.01, D)
    with pytest.raises(NotCovered, match="small-step"):
        integrate_schedule(ADAMW, schedule("constant", 10, 1.0), 0.5, D)
    with pytest.raises(NotCovered, match="momentum's correlations"):
        integrate_schedule(SGDM, schedule("constant", 100, 0.1), 5e-4, D, r0=1.0)


@pytest.mark.parametrize("name", ["adamw", "sgdm", "lion"])
def test_a_stationary_start_at_equilibrium_stays_there(name):
    """Picked up mid-run at its equilibrium norm (buffers warm), a constant lr keeps r_t at r*;
    from empty buffers the first steps differ (the start-up the flag removes)."""
    traits, extra, lam, peak, r0 = {
        "adamw": (ADAMW, {}, 0.05, 0.01, 3.0), "sgdm": (SGDM, {}, 5e-3, 0.1, 8.0),
        "lion": (ADAMW, dict(sign_betas=(0.9, 0.99)), 0.1, 2e-3, 5.0)}[name]
    sched = schedule("constant", 3000, peak)
    long = integrate_schedule(traits, schedule("constant", 40000, peak), lam, D, r0, **extra)
    r_star = long.r[-1]
    warm = integrate_schedule(traits, sched, lam, D, r_star, stationary_start=True, **extra)
    np.testing.assert_allclose(warm.r, r_star, rtol=0.01)
    cold = integrate_schedule(traits, sched, lam, D, r_star, **extra)
    first = cold.delta[0] / warm.delta[0]  # empty vs warm buffers: a different first step
    if name == "lion":  # a sign has ||u||^2 = d either way
        assert first == pytest.approx(1.0, rel=1e-9)
    else:
        assert max(first, 1 / first) > 2


def test_a_stationary_start_continues_a_simulated_run():
    """A direct simulation of AdamW along warm-up + cosine, picked up at step 1000: the theory
    started there (stationary, r0 = the simulated rms norm) follows the rest within the
    tolerances of the cold-start test."""
    sched = schedule("warmup_cosine", 3000, 0.05, warmup=100)
    rs, ds, gr = simulate("adamw", sched.gamma, 0.05, D, 2.0, seed=3)
    from theory.schedules import Schedule
    tail = Schedule("piece", sched.gamma[1000:])
    pred = integrate_schedule(ADAMW, tail, 0.05, D, rs[1000], beta2=0.99, stationary_start=True)
    ok = sched.gamma[1000:] > 0
    np.testing.assert_allclose(rs[1000:][ok], pred.r[ok], rtol=0.05)
    np.testing.assert_allclose(gr[1000:][ok], pred.grad_ratio[ok], rtol=0.10)
