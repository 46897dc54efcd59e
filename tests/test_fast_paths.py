"""Every fast form (torch's kernels, the fused kernels) equals the stages (``impl='reference'``).

Which form each rule and structural case runs in comes from the one rule table
(``tests/rule_table.py``); a case without a fast form runs ``impl='auto'`` and must run the stages.

Problem: tensors whose gradients make AdamP's test pass in the CHANNEL view (each output row's
gradient orthogonal to that row of the weight), in the LAYER view only (orthogonal to the whole
weight, not row by row), or in NO view (random), plus vectors, one tensor large enough for the
per-tensor kernels (≥ 2^15 elements) and many small ones for the list kernels; two param groups
with their own lr and weight decay. Gradients are drawn afresh at every step from the current
weights, so the projection fires at every step where intended (the others get a radial part). Compared after every step: parameters, every
state tensor and the projection's verdicts.

Tolerances: float64, max|fast − ref| / max|ref| ≤ 1e-10 per tensor (the two paths evaluate the same
formulas in a different order; observed ~1e-15). float32: ≤ 1e-4 after 6 steps (single-precision
round-off in differently ordered sums, amplified by Adam-type divisions by √v; observed ~1e-6).
"""
import math

import pytest
import torch

import sandbox
from rule_kwargs import rule_kwargs
from rule_table import TABLE, cases, expected_impl, fast_form
from sandbox.optim.forms.torch_kernels import torch_kind

RULES = sandbox.available()
# (rule, extra hyperparameters): every rule, plus the structural options of the stages
CASES = cases()
HP = dict(sgd=dict(momentum=0.9), sgdp=dict(momentum=0.9), rfrmsprop=dict(),
          rfrmspropp=dict())


def _hp(rule, extra):
    lr = 0.05 if rule.startswith(("sgd", "adai")) else 0.01
    return rule_kwargs(rule, **{"lr": lr, **HP.get(rule, {}), "weight_decay": 1e-2, **extra})


def _id(case):
    rule, extra = case
    return rule + "".join(f"-{k}={v}" for k, v in extra.items())


def tangential(g, w, view):
    """g made orthogonal to w row by row ('channel') or as a whole ('layer')."""
    wr = w.reshape(w.shape[0], -1) if view == "channel" else w.reshape(1, -1)
    gr = g.reshape(wr.shape)
    w_hat = wr / wr.norm(dim=1, keepdim=True)
    return (gr - w_hat * (w_hat * gr).sum(dim=1, keepdim=True)).reshape(g.shape)


# name -> (shape, view the gradient is made tangential in, or None)
SHAPES = {"big_channel": ((64, 32, 4, 4), "channel"), "conv_channel": ((6, 3, 3, 3), "channel"),
          "conv_layer": ((6, 4, 3, 3), "layer"), "fc_layer": ((4, 10), "layer"),
          "fc_plain": ((5, 7), None), "bias": ((7,), None), "scale": ((6,), None)}
SMALL = {f"small{i}": ((8, 4), "channel" if i % 2 else None) for i in range(8)}
EXPECTED = {"channel": 1, "layer": 2, None: 0}


def make_problem(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    specs = {**SHAPES, **SMALL}
    return {n: torch.randn(s, generator=gen, dtype=dtype) for n, (s, _) in specs.items()}, specs


def grads(params, specs, step):
    gen = torch.Generator().manual_seed(1000 + step)
    out = {}
    for n, w in params.items():
        g = torch.randn(w.shape, generator=gen, dtype=w.dtype)
        view = specs[n][1]
        if view:
            out[n] = tangential(g, w.detach(), view)
        else:  # a radial part: |cos(g, w)| far above the threshold, so no view fires
            out[n] = g + w.detach() * (g.norm() / w.detach().norm())
    return out


def groups(params, hp):
    names = list(params)
    return [dict(params=[params[n] for n in names[::2]], lr=hp["lr"] * 0.5, weight_decay=2e-2),
            dict(params=[params[n] for n in names[1::2]])]


def run_pair(rule, hp, dtype=torch.float64, steps=6, group_fn=groups, problem=None,
             between=None, extra=None):
    """Step a reference and a fast optimizer on copies of one problem; yield after each step."""
    params, specs = problem or make_problem(dtype)
    ref = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    fast = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    want = expected_impl(rule, extra or {}, dtype)
    opt_r = sandbox.create(rule, group_fn(ref, hp), impl="reference", **hp)
    opt_f = sandbox.create(rule, group_fn(fast, hp), impl="fast" if want == "fast" else "auto", **hp)
    for step in range(steps):
        g = grads(ref, specs, step)
        for n in ref:
            ref[n].grad, fast[n].grad = g[n].clone(), g[n].clone()
        opt_r.step()
        opt_f.step()
        assert opt_f.last_impl == want and opt_r.last_impl == "reference"
        if between is not None:
            opt_r, opt_f = between(step, opt_r, opt_f)
        yield step, ref, fast, opt_r, opt_f


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item() if b.numel() else 0.0


def assert_same(ref, fast, opt_r, opt_f, rtol, context):
    for n in ref:
        pr, pf = ref[n], fast[n]
        assert rel(pf, pr) <= rtol, f"{context}: parameter {n}: rel err {rel(pf, pr):.2e}"
        sr, sf = opt_r.state[pr], opt_f.state[pf]
        assert set(sr) == set(sf), f"{context}: state keys of {n}: {sorted(sr)} vs {sorted(sf)}"
        for k in sr:
            assert sf[k].dtype == sr[k].dtype and sf[k].shape == sr[k].shape, f"{context}: {n}/{k}"
            assert rel(sf[k], sr[k]) <= rtol, f"{context}: state {n}/{k}: rel err {rel(sf[k], sr[k]):.2e}"
        ir, i_f = opt_r.last_info.get(pr, {}), opt_f.last_info.get(pf, {})
        if "projection" in ir:
            assert torch.equal(ir["projection"], i_f["projection"]), f"{context}: verdict of {n}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_fast_equals_reference_float64(case):
    rule, extra = case
    hp = _hp(rule, extra)
    projected = sandbox.info(rule).projected or extra.get("project", False)
    for step, ref, fast, opt_r, opt_f in run_pair(rule, hp, extra=extra):
        assert_same(ref, fast, opt_r, opt_f, 1e-10, f"{_id(case)} step {step + 1}")
        if projected:  # the problem does exercise both views and the no-fire case
            for n, (_, view) in {**SHAPES, **SMALL}.items():
                if len(SHAPES.get(n, SMALL.get(n))[0]) > 1:
                    code = int(opt_r.last_info[ref[n]]["projection"])
                    assert code == EXPECTED[view], f"{n}: view {code}, expected {view}"


@pytest.mark.parametrize("rule", RULES)
def test_fast_equals_reference_float32(rule):
    hp = _hp(rule, {})
    for step, ref, fast, opt_r, opt_f in run_pair(rule, hp, dtype=torch.float32):
        pass
    assert_same(ref, fast, opt_r, opt_f, 1e-4, f"{rule} float32 after {step + 1} steps")


def _replica_problem():
    """Replica axis 0: replica 0 channel-tangential, 1 layer-tangential, 2 with a radial part."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(3, 6, 4, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    return {"w": w, "v": v}, None


def _replica_grads(params, step):
    gen = torch.Generator().manual_seed(50 + step)
    w, v = params["w"].detach(), params["v"].detach()
    g = torch.randn(w.shape, generator=gen, dtype=w.dtype)
    g = torch.stack([tangential(g[0], w[0], "channel"), tangential(g[1], w[1], "layer"),
                     g[2] + w[2] * (g[2].norm() / w[2].norm())])  # radial part: nothing fires
    return {"w": g, "v": torch.randn(v.shape, generator=gen, dtype=v.dtype)}


@pytest.mark.parametrize("rule", RULES)
def test_fast_equals_reference_replicas(rule):
    hp = _hp(rule, {})
    params, _ = _replica_problem()
    ref = {n: p.clone() for n, p in params.items()}
    fast = {n: p.clone() for n, p in params.items()}
    want = expected_impl(rule)
    opt_r = sandbox.create(rule, [{"params": list(ref.values()), "replica_dims": 1}], impl="reference", **hp)
    opt_f = sandbox.create(rule, [{"params": list(fast.values()), "replica_dims": 1}], impl="auto", **hp)
    for step in range(5):
        g = _replica_grads(ref, step)
        for n in ref:
            ref[n].grad, fast[n].grad = g[n].clone(), g[n].clone()
        opt_r.step()
        opt_f.step()
        assert opt_f.last_impl == want
        assert_same(ref, fast, opt_r, opt_f, 1e-10, f"{rule} replicas step {step + 1}")
    if sandbox.info(rule).projected:
        assert opt_f.last_info[fast["w"]]["projection"].tolist() == [1, 2, 0]


@pytest.mark.parametrize("rule", ["sgd", "sgdp", "adamw", "adamp", "adai", "rfadamw", "rfrmsprop"])
@pytest.mark.parametrize("first,second", [("reference", "fast"), ("fast", "reference")])
def test_state_dicts_interchangeable(rule, first, second):
    """Three steps on one path, state_dict → load_state_dict into a new optimizer on the other
    path, three more steps: equal to six steps on the reference."""
    hp = _hp(rule, {})
    params, specs = make_problem()
    ref = {n: p.clone() for n, p in params.items()}
    mix = {n: p.clone() for n, p in params.items()}
    opt_r = sandbox.create(rule, groups(ref, hp), impl="reference", **hp)
    opt_m = sandbox.create(rule, groups(mix, hp), impl=first, **hp)
    for step in range(6):
        if step == 3:
            saved = opt_m.state_dict()
            opt_m = sandbox.create(rule, groups(mix, hp), impl=second, **hp)
            opt_m.load_state_dict(saved)
        g = grads(ref, specs, step)
        for n in ref:
            ref[n].grad, mix[n].grad = g[n].clone(), g[n].clone()
        opt_r.step()
        opt_m.step()
        assert opt_m.last_impl == (first if step < 3 else second)
        assert_same(ref, mix, opt_r, opt_m, 1e-10, f"{rule} {first}->{second} step {step + 1}")


def _count_host_reads(monkeypatch, allowed):
    """Count Python-level reads of tensor values (bool/item/float/int/tolist), except of the
    tensors in ``allowed`` (CPU step counters)."""
    calls = []

    def wrap(name):
        orig = getattr(torch.Tensor, name)

        def f(self, *a, **k):
            if not any(self is t for t in allowed()):
                calls.append((name, tuple(self.shape)))
            return orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, f)

    for name in ("__bool__", "item", "__float__", "__int__", "tolist", "__index__"):
        wrap(name)
    return calls


@pytest.mark.parametrize("impl", ["auto", "reference"])
@pytest.mark.parametrize("rule", ["adamp", "sgdp", "adaiwp", "rfadamwp", "adamw"])
def test_no_host_sync_per_tensor(monkeypatch, rule, impl):
    """With nonfinite='ignore' a step reads no tensor value on the host (except the CPU step
    counters); with nonfinite='raise' exactly one read per step, however many tensors."""
    counts = {}
    for nonfinite in ("ignore", "raise"):
        for n_small in (2, 8):
            params, specs = make_problem()
            params = {k: v for k, v in params.items() if k in SHAPES or int(k[5:]) < n_small}
            opt = sandbox.create(rule, list(params.values()), impl=impl, nonfinite=nonfinite,
                                 **_hp(rule, {}))
            g = grads(params, specs, 0)
            for n, p in params.items():
                p.grad = g[n]
            opt.step()  # state creation
            steps = lambda: [s["step"] for s in opt.state.values() if "step" in s]
            with monkeypatch.context() as m:
                calls = _count_host_reads(m, steps)
                opt.step()
            assert opt.last_impl == (expected_impl(rule) if impl == "auto" else impl)
            counts[(nonfinite, n_small)] = list(calls)
    assert counts[("ignore", 2)] == [] and counts[("ignore", 8)] == [], counts
    assert len(counts[("raise", 2)]) == len(counts[("raise", 8)]) == 1, counts


def test_impl_argument_and_fallback():
    w = torch.randn(4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="impl='turbo'.*'auto', 'fast', 'reference'"):
        sandbox.create("adamp", [w], impl="turbo")

    def noncontiguous():  # a leaf whose memory is the transpose of its shape
        x = torch.empty_strided((4, 6), (1, 4), dtype=torch.float64).copy_(w)
        x.grad = torch.ones(4, 6, dtype=torch.float64)
        return x

    x = noncontiguous()
    opt = sandbox.create("adamp", [x], impl="fast")
    with pytest.raises(NotImplementedError, match="contiguous"):
        opt.step()
    assert torch.equal(x, w) and not opt.state[x]  # refused before touching anything
    a, b = noncontiguous(), noncontiguous()
    oa, ob = sandbox.create("adamp", [a], impl="auto"), sandbox.create("adamp", [b], impl="reference")
    oa.step()
    ob.step()
    assert oa.last_impl == "reference" and torch.equal(a, b) and not torch.equal(a, w)


def test_chains_dispatched_to_torch_are_exactly_torchs():
    kinds = {r: torch_kind(sandbox.info(r).stages(rule_kwargs(r)), {**sandbox.info(r).defaults, **rule_kwargs(r)})
             for r in RULES}
    assert {r for r, k in kinds.items() if k} == {r for r in RULES if TABLE[r].fast == "torch"}
    assert kinds["sgd"] == "sgd" and kinds["adam"] == "adam" and kinds["adamw"] == "adamw"
    hp = {**sandbox.info("adamw").defaults, "nesterov": True}
    assert torch_kind(sandbox.info("adamw").stages(hp), hp) is None  # AdamP's Nesterov form


def test_adai_beta1_diagnostic_and_stale_read():
    """The fast path computes Adai's per-element β1 on first access from the state the step
    left: equal to the reference's; reading it after a later step raises."""
    hp = _hp("adaiw", {})
    for step, ref, fast, opt_r, opt_f in run_pair("adaiw", hp, steps=2):
        for n in ref:
            if step == 1 and n == "bias":
                continue  # left unread, for the stale read below
            b_r, b_f = opt_r.last_info[ref[n]]["beta1"], opt_f.last_info[fast[n]]["beta1"]
            assert b_f.shape == b_r.shape and rel(b_f, b_r) <= 1e-12
    read, unread = opt_f.last_info[fast["fc_plain"]], opt_f.last_info[fast["bias"]]
    kept = read["beta1"].clone()
    for n in fast:
        fast[n].grad = torch.randn_like(fast[n])
    opt_f.step()
    assert torch.equal(read["beta1"], kept)  # read in time: kept
    with pytest.raises(RuntimeError, match="earlier step"):
        unread["beta1"]


@pytest.mark.gpu
@pytest.mark.parametrize("rule", ["adamp", "sgdp", "adai", "rfadamw", "adamw"])
def test_cuda_fast_path_no_sync_and_equal(rule):
    hp = _hp(rule, {})
    params, specs = make_problem(torch.float64)
    ref = {n: p.clone() for n, p in params.items()}
    dev = {n: p.clone().cuda() for n, p in params.items()}
    opt_r = sandbox.create(rule, list(ref.values()), impl="reference", **hp)
    opt_d = sandbox.create(rule, list(dev.values()), impl="fast", nonfinite="ignore", **hp)
    for step in range(3):
        g = grads(ref, specs, step)
        for n in ref:
            ref[n].grad, dev[n].grad = g[n].clone(), g[n].clone().cuda()
        opt_r.step()
        if step == 0:
            opt_d.step()
        else:
            torch.cuda.set_sync_debug_mode("error")
            try:
                opt_d.step()
            finally:
                torch.cuda.set_sync_debug_mode(0)
    for n in ref:
        assert rel(dev[n].cpu(), ref[n]) <= 1e-10
