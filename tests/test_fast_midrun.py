"""Mid-run changes that the fast path (impl='fast') must follow exactly like the reference.

1. A group's ``replica_dims`` changed between steps (0 → 1 → 0). The fast path caches a plan per
   group (rows, segments, replica shapes); the plan must follow ``replica_dims``. Problem: two
   param groups of tensors with a leading replica axis of size R; gradients made tangential per
   (replica, channel) row, per replica as a whole, or (replica 0 only) left raw, at the current
   weights, so the projection fires on different rows and replicas depending on
   ``replica_dims``: a plan built for the other setting gives other parameters. Every rule runs
   with ``project=True`` (plus Adai's global mean and torch's Adam kernel without it).
   float64: max|fast − ref| / max|ref| ≤ 1e-10 per tensor, after every step.

2. The model's dtype changed between steps (``model.double()`` after float32 steps, and back).
   Both paths cast the state to the parameter's new dtype at the next step, as torch's
   ``load_state_dict`` casts a checkpoint (floating state, not the ``step`` counters; Adai's
   ``beta1_prod`` stays float32 for 16-bit parameters). Problem: conv → BatchNorm and
   linear → BatchNorm (scale-invariant weights: the projection fires). Checked: state dtypes on
   both paths, fast == reference (1e-5 relative: the float32 steps differ by round-off), and the
   reference equals an explicit ``load_state_dict(state_dict())`` at the switch, bit for bit.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import sandbox
from rule_table import expected_impl
from rule_kwargs import rule_kwargs

RULES = sandbox.available()
R = 3  # replicas


def _hp(rule, **extra):
    lr = 0.05 if rule.startswith(("sgd", "adai")) else 0.01
    mom = dict(momentum=0.9) if rule.startswith("sgd") else {}
    return rule_kwargs(rule, **{"lr": lr, **mom, "weight_decay": 1e-2, **extra})


def _rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300)) if b.numel() else 0.0


def _assert_state_close(opt_a, opt_b, pa, pb, tol, where):
    for x, y in zip(pa, pb):
        sa, sb = opt_a.state[x], opt_b.state[y]
        assert sa.keys() == sb.keys(), where
        for k in sb:
            if isinstance(sb[k], torch.Tensor):
                assert sa[k].dtype == sb[k].dtype, f"{where}: state {k}"
                assert _rel(sa[k], sb[k]) <= tol, f"{where}: state {k} of shape {tuple(x.shape)}"


# --- 1. replica_dims changed mid-run ---------------------------------------------------------------
# name -> (shape with the replica axis first, how its gradient is made)
SHAPES = {"rows": ((R, 6, 4, 3, 3), "rows"), "mixed": ((R, 4, 6), "mixed"),
          "whole": ((R, 5, 8), "whole"), "plain": ((R, 7, 3), None), "bias": ((R, 5), None),
          "scale": ((R,), None)}
GROUPS = (("rows", "mixed", "bias"), ("whole", "plain", "scale"))
SCHEDULE = (0, 0, 1, 1, 1, 0, 0)  # replica_dims at each step


def _tangent(g, w):
    """g with each row (last axis) made orthogonal to the same row of w."""
    w_hat = w / w.norm(dim=-1, keepdim=True)
    return g - w_hat * (w_hat * g).sum(dim=-1, keepdim=True)


def _replica_grad(w, kind, gen):
    g = torch.randn(w.shape, generator=gen, dtype=w.dtype)
    if kind == "rows":  # per (replica, channel): the channel view of replica_dims=1
        return _tangent(g.reshape(R, w.shape[1], -1), w.reshape(R, w.shape[1], -1)).reshape(w.shape)
    if kind == "whole":  # per replica: layer view of replica_dims=1, channel view of 0
        return _tangent(g.reshape(R, -1), w.reshape(R, -1)).reshape(w.shape)
    if kind == "mixed":  # replicas 1.. per row, replica 0 raw: no view of replica_dims=0 passes
        t = _tangent(g.reshape(R, w.shape[1], -1), w.reshape(R, w.shape[1], -1)).reshape(w.shape)
        return torch.cat([g[:1], t[1:]])
    return g


def _replica_run(rule, extra, impl):
    gen = torch.Generator().manual_seed(0)
    params = {n: nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64))
              for n, (s, _) in SHAPES.items()}
    groups = [{"params": [params[n] for n in names]} for names in GROUPS]
    groups[1]["lr"] = _hp(rule)["lr"] / 2
    opt = sandbox.create(rule, groups, impl=impl, **_hp(rule, **extra))
    steps = []
    for t, rd in enumerate(SCHEDULE):
        for g in opt.param_groups:
            g["replica_dims"] = rd
        gen = torch.Generator().manual_seed(100 + t)
        for n, (_, kind) in SHAPES.items():
            params[n].grad = _replica_grad(params[n].detach(), kind, gen)
        opt.step()
        want = expected_impl(rule, extra) if impl == "auto" else impl
        assert opt.last_impl == want, f"step {t}: {want} did not run"
        steps.append(({n: p.detach().clone() for n, p in params.items()},
                      {n: copy.deepcopy(dict(opt.state[p])) for n, p in params.items()},
                      {n: opt.last_info[p].get("projection") for n, p in params.items()}))
    return steps


REPLICA_CASES = [(r, {"project": True}) for r in RULES] + [("adai", {}), ("adam", {})]


@pytest.mark.parametrize("rule,extra", REPLICA_CASES,
                         ids=[r + ("-project" if e else "") for r, e in REPLICA_CASES])
def test_replica_dims_changed_mid_run(rule, extra):
    fast, ref = _replica_run(rule, extra, "auto"), _replica_run(rule, extra, "reference")
    for t, ((pf, sf, cf), (pr, sr, cr)) in enumerate(zip(fast, ref)):
        where = f"{rule} step {t} (replica_dims={SCHEDULE[t]})"
        for n in SHAPES:
            assert _rel(pf[n], pr[n]) <= 1e-10, f"{where}: parameter {n}"
            assert sf[n].keys() == sr[n].keys(), f"{where}: state keys of {n}"
            for k, v in sr[n].items():
                assert _rel(sf[n][k], v) <= 1e-10, f"{where}: state {k} of {n}"
            if cr[n] is not None:  # the projection's verdicts, one per replica
                assert cf[n] is not None and torch.equal(cf[n], cr[n]), f"{where}: verdicts of {n}"
    if extra.get("project"):  # the problem does what it is meant to: which views fire depends on rd
        last_rd1, last_rd0 = ref[SCHEDULE.index(0, 2) - 1][2], ref[-1][2]
        assert last_rd1["rows"].tolist() == [1] * R and last_rd1["mixed"].tolist() == [0] + [1] * (R - 1)
        # replica_dims=0: one verdict; the raw rows of replica 0 fail the channel view
        assert int(last_rd0["rows"]) == 1 and int(last_rd0["mixed"]) != 1


def test_replica_dims_change_is_seen_by_a_cached_plan():
    """The same tensors, the same group, only replica_dims differs: different results (so a plan
    kept from before the change would be caught by the test above)."""
    out = {}
    for rd in (0, 1):
        gen = torch.Generator().manual_seed(0)
        w = nn.Parameter(torch.randn(SHAPES["mixed"][0], generator=gen, dtype=torch.float64))
        opt = sandbox.create("adamp", [{"params": [w], "replica_dims": rd}], impl="fast")
        for t in range(3):
            w.grad = _replica_grad(w.detach(), "mixed", torch.Generator().manual_seed(t))
            opt.step()
        out[rd] = w.detach().clone()
    assert _rel(out[0], out[1]) > 1e-6


# --- 2. dtype changed mid-run ------------------------------------------------------------------
class Net(nn.Module):
    """conv → BN (every filter scale-invariant), linear → BN (every row), classifier."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn2d = nn.BatchNorm2d(4)
        self.fc = nn.Linear(16, 6, bias=False)
        self.bn1d = nn.BatchNorm1d(6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.bn2d(self.conv(x))), 2).flatten(1)
        return self.out(F.relu(self.bn1d(self.fc(x))))


def _batch(t, dtype):
    gen = torch.Generator().manual_seed(1000 + t)
    return torch.randn(8, 2, 6, 6, generator=gen).to(dtype), torch.randint(0, 3, (8,), generator=gen)


def _dtype_run(rule, impl, before, after, switch=3, steps=6, reload=False):
    torch.manual_seed(0)
    model = Net().to(before)
    opt = sandbox.create(rule, model.parameters(), impl=impl, **_hp(rule))
    for t in range(steps):
        if t == switch:
            model.to(after)
            if reload:  # torch's way of casting the state: through a checkpoint
                opt.load_state_dict(opt.state_dict())
        dtype = before if t < switch else after
        x, y = _batch(t, dtype)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


def _expected_dtype(opt, key, p):
    full = {k for s in opt.rule.stages(opt.defaults) for k in getattr(s, "FULL_PRECISION_STATE", ())}
    return torch.promote_types(p.dtype, torch.float32) if key in full else p.dtype


def _check_state_dtypes(model, opt, where):
    for p in model.parameters():
        assert opt.state[p], f"{where}: no state"  # every rule here keeps state
        for k, v in opt.state[p].items():
            if k == "step":
                assert v.dtype == torch.float32 and v.device.type == "cpu", f"{where}: step counter"
            else:
                assert v.dtype == _expected_dtype(opt, k, p), f"{where}: state {k} is {v.dtype}"


@pytest.mark.parametrize("before,after", [(torch.float32, torch.float64),
                                          (torch.float64, torch.float32)],
                         ids=["float32-to-float64", "float64-to-float32"])
@pytest.mark.parametrize("rule", RULES)
def test_dtype_changed_mid_run(rule, before, after):
    fast_model, fast = _dtype_run(rule, "auto", before, after)
    ref_model, ref = _dtype_run(rule, "reference", before, after)
    assert fast.last_impl == expected_impl(rule) and ref.last_impl == "reference"
    for model, opt, impl in ((fast_model, fast, "fast"), (ref_model, ref, "reference")):
        assert all(p.dtype == after for p in model.parameters())
        _check_state_dtypes(model, opt, f"{rule} {impl}")
    pf, pr = list(fast_model.parameters()), list(ref_model.parameters())
    for a, b in zip(pf, pr):
        assert _rel(a.detach(), b.detach()) <= 1e-5, f"{rule}: parameter of shape {tuple(b.shape)}"
    _assert_state_close(fast, ref, pf, pr, 1e-5, rule)
    if sandbox.info(rule).projected:  # the scale-invariant weights were projected after the switch
        assert int(ref.last_info[ref_model.conv.weight]["projection"]) == 1
        assert int(ref.last_info[ref_model.fc.weight]["projection"]) == 1
    # the cast at the next step is torch's load_state_dict cast, bit for bit
    ck_model, ck = _dtype_run(rule, "reference", before, after, reload=True)
    for a, b in zip(ck_model.parameters(), pr):
        assert torch.equal(a, b), f"{rule}: differs from load_state_dict's cast"
    for a, b in zip(ck_model.parameters(), pr):
        for k, v in ck.state[a].items():
            assert torch.equal(v, ref.state[b][k]) and v.dtype == ref.state[b][k].dtype, k


@pytest.mark.parametrize("rule", RULES)
def test_dtype_change_to_bfloat16_keeps_full_precision_state(rule):
    """float32 → bfloat16: the state follows (bfloat16), except what the rule keeps in float32
    for 16-bit parameters (Adai's beta1_prod); the default path (which falls back to the
    reference where the fast path refuses 16-bit parameters) agrees with the reference."""
    runs = {impl: _dtype_run(rule, impl, torch.float32, torch.bfloat16, switch=2, steps=3)
            for impl in ("auto", "reference")}
    for impl, (model, opt) in runs.items():
        _check_state_dtypes(model, opt, f"{rule} {impl}")
        assert all(torch.isfinite(p).all() for p in model.parameters())
    if any(getattr(s, "FULL_PRECISION_STATE", ()) for s in sandbox.info(rule).stages(_hp(rule))):
        assert runs["auto"][1].last_impl == "reference"
        assert runs["auto"][1].state[runs["auto"][0].conv.weight]["beta1_prod"].dtype == torch.float32
    (ma, oa), (mr, o_r) = runs["auto"], runs["reference"]
    ulp = torch.finfo(torch.bfloat16).eps
    for a, b in zip(ma.parameters(), mr.parameters()):
        assert _rel(a.detach(), b.detach()) <= 8 * ulp, f"{rule}: parameter of shape {tuple(b.shape)}"


def test_refused_step_casts_nothing():
    """A step refused for a non-finite gradient leaves the state as it was (its old dtype)."""
    p = nn.Parameter(torch.randn(4, 3))
    opt = sandbox.create("adamp", [p])
    p.grad = torch.randn(4, 3)
    opt.step()
    p.data = p.data.double()
    p.grad = torch.full((4, 3), float("nan"), dtype=torch.float64)
    with pytest.raises(sandbox.NonFiniteGradientError):
        opt.step()
    assert opt.state[p]["exp_avg"].dtype == torch.float32
    p.grad = torch.randn(4, 3, dtype=torch.float64)
    opt.step()
    assert opt.last_impl == "fast" and opt.state[p]["exp_avg"].dtype == torch.float64
