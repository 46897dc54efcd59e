"""One rank of a distributed test job (started by :mod:`launch`): gloo on CPU, float64.

For every case of the job spec it trains the same small net under FSDP2 (``fully_shard``) and/or
DDP, each rank on its own micro-batch, and measures against a single-process run of the same rule
fed the same micro-batches (loss = mean of the micro-batch losses, BatchNorm statistics per
micro-batch as on the ranks), computed on this rank: final parameters and optimizer state (this
rank's shard against the same rows of the single-process tensors), the projection's verdicts at
every step, the collectives each ``step()`` takes (``CommDebugMode``, which sees c10d calls and
DTensor's implicit ones, and the optimizer's own count), DCP save → load → continue, and the
bad-input refusals. Results go to ``result{rank}.json``; the test asserts on them. Any exception
escapes: the rank exits non-zero with its traceback and the launcher fails the test with it.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

import sandbox
from rule_kwargs import rule_kwargs
from sandbox.optim import hyper as H
from sandbox.optim.distributed import chunk_bounds
from sandbox.optim.registry import RuleSpec, register, unregister
from sandbox.optim.stages import Stage, StageTraits, add_decayed_weights, chain, radial_projection, scale_by_lr
from sandbox.optim.stages.base import Reduce

STEPS = 6
SAVE_AT = 3
MICRO = 4
DEVICE = "cpu"  # "cuda" (one GPU per rank, NCCL) when the job spec asks
MESHES: dict = {}  # world size → 1-D device mesh over ranks 0 … world−1 (one job, several sizes)


# --- the model and the data ----------------------------------------------------------------------
class Net(nn.Module):
    """conv + BN (5 channels: uneven shards), linear + LayerNorm (7 rows), a 2-row head (fewer
    rows than 3 ranks: an empty shard), biases and norm weights (vectors)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)  # BN follows
        self.bn = nn.BatchNorm2d(5)
        self.fc = nn.Linear(45, 7)
        self.ln = nn.LayerNorm(7)
        self.head = nn.Linear(7, 2)

    def forward(self, x):
        x = nn.functional.avg_pool2d(torch.relu(self.bn(self.conv(x))), 2).flatten(1)
        return self.head(torch.relu(self.ln(self.fc(x))))


class Stacked(nn.Module):
    """Five replicas (``replica_dims=1``) of a 4×3 layer with LayerNorm: dim 0 is the replica axis."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(5, 4, 3))
        self.b = nn.Parameter(torch.randn(5, 4) * 0.1)

    def forward(self, x):
        h = torch.einsum("rij,bj->rbi", self.w, x) + self.b[:, None, :]
        return nn.functional.layer_norm(h, (4,))


def make(model: str, seed: int = 0):
    torch.manual_seed(seed)
    return (Net() if model == "net" else Stacked()).double().to(DEVICE)


def batch(model: str, t: int, r: int):
    g = torch.Generator().manual_seed(7919 * t + 104729 * r + 1)
    if model == "net":
        x, y = (torch.randn(MICRO, 3, 6, 6, generator=g, dtype=torch.float64),
                torch.randn(MICRO, 2, generator=g, dtype=torch.float64))
    else:
        x, y = (torch.randn(MICRO, 3, generator=g, dtype=torch.float64),
                torch.randn(5, MICRO, 4, generator=g, dtype=torch.float64))
    return x.to(DEVICE), y.to(DEVICE)


def loss_of(m, model, t, r):
    x, y = batch(model, t, r)
    return nn.functional.mse_loss(m(x), y)


def groups(m, model: str):
    if model == "net":
        return m.parameters()
    return [{"params": list(m.parameters()), "replica_dims": 1}]


def hyper(rule: str) -> dict:
    d = sandbox.info(rule).defaults
    extra = {}
    if "weight_decay" in d:
        extra["weight_decay"] = 1e-2
    if "momentum" in d:
        extra["momentum"] = 0.9
    return rule_kwargs(rule, **extra)


# --- helpers ---------------------------------------------------------------------------------------
def local(t):
    return t.to_local() if hasattr(t, "to_local") else t


def rows(full: torch.Tensor, part: torch.Tensor, world: int, rank: int, sharded: bool):
    if not sharded or full.dim() == 0 or part.shape == full.shape and not any(part.stride()):
        return full  # (one number broadcast to the parameter's shape is kept whole on every rank)
    start, length = chunk_bounds(full.shape[0], world, rank)
    assert part.shape[0] == length, (tuple(full.shape), tuple(part.shape))
    return full[start:start + length]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| relative to the largest |b| of the tensor (exact zeros compared absolutely)."""
    a, b = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    if a.shape != b.shape:
        return math.inf
    if b.numel() == 0:
        return 0.0
    diff = float((a - b).abs().max())
    if math.isnan(diff):
        return math.inf
    scale = float(b.abs().max())
    return diff / scale if scale > 0 else diff


def compare(m, opt, ref, ropt, world, rank, sharded) -> dict:
    """Worst relative error of the parameters and of every state tensor (this rank's rows)."""
    out = {"params": 0.0, "state": 0.0, "worst": ""}
    for (name, p), q in zip(m.named_parameters(), ref.parameters()):
        lp = local(p)
        e = rel_err(lp, rows(q, lp, world, rank, sharded))
        if e > out["params"]:
            out["params"], out["worst"] = e, name
        st, rst = opt.state[p], ropt.state[q]
        if set(st) != set(rst):
            raise AssertionError(f"{name}: state keys {sorted(st)} against {sorted(rst)}")
        for k, v in st.items():
            lv = local(v)
            e = rel_err(lv, rows(rst[k], lv, world, rank, sharded and k != "step"))
            if e > out["state"]:
                out["state"] = e
                out["worst_state"] = f"{name}.{k}"
    return out


def codes(opt, params) -> list:
    out = []
    for p in params:
        info = opt.last_info.get(p, {})
        c = info.get("projection") if hasattr(info, "get") else None
        out.append(None if c is None else [int(x) for x in c.reshape(-1).tolist()])
    return out


class Collectives:
    """Count the collectives of a block: the Python-level ``torch.distributed`` calls, and, with
    ``dispatched``, also ``CommDebugMode`` (c10d ops and DTensor's implicit collectives: it sees
    every op of the block, which costs, so it runs on the first and the last step only)."""

    NAMES = ("all_gather", "all_reduce", "broadcast", "reduce_scatter", "all_gather_into_tensor",
             "reduce_scatter_tensor", "all_to_all", "barrier", "gather", "scatter", "reduce")

    def __init__(self, dispatched: bool):
        self.python = 0
        self.dispatched = -1 if not dispatched else 0
        self._orig = {}
        self.mode = None

    def __enter__(self):
        for n in self.NAMES:
            f = getattr(dist, n, None)
            if f is None:
                continue
            self._orig[n] = f

            def wrapped(*a, _f=f, **k):
                self.python += 1
                return _f(*a, **k)
            setattr(dist, n, wrapped)
        if self.dispatched == 0:
            from torch.distributed.tensor.debug import CommDebugMode

            self.mode = CommDebugMode()
            self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        if self.mode is not None:
            self.mode.__exit__(*exc)
            self.dispatched = self.mode.get_total_counts()
        for n, f in self._orig.items():
            setattr(dist, n, f)
        return False

    @property
    def count(self) -> int:
        return max(self.python, self.dispatched)


# --- the runs --------------------------------------------------------------------------------------
def reference(rule, model, world, kw, steps=STEPS):
    """One process, the same micro-batches: per step the mean of the ranks' micro-batch losses."""
    ref = make(model)
    ropt = sandbox.create(rule, groups(ref, model), **kw)
    verdicts = []
    for t in range(steps):
        ropt.zero_grad()
        (sum(loss_of(ref, model, t, r) for r in range(world)) / world).backward()
        ropt.step()
        verdicts.append(codes(ropt, list(ref.parameters())))
    return ref, ropt, verdicts


def fsdp_model(model, world):
    from torch.distributed.fsdp import fully_shard

    m = make(model)
    fully_shard(m, mesh=MESHES[world])
    return m


def train(m, opt, model, rank, t0, t1, record=None):
    for t in range(t0, t1):
        opt.zero_grad()
        loss_of(m, model, t, rank).backward()
        with Collectives(dispatched=t in (0, STEPS - 1)) as c:
            opt.step()
        if record is not None:
            record["collectives"].append([c.count, c.python, c.dispatched, opt.last_collectives])
            record["verdicts"].append(codes(opt, list(m.parameters())))


def case_rule(rule, model, world, rank, dcp_dir, modes):
    kw = hyper(rule)
    t0 = time.perf_counter()
    ref, ropt, rverdicts = reference(rule, model, world, kw)
    res = {"kw": {k: str(v) for k, v in kw.items()}, "t_ref": time.perf_counter() - t0}
    if "fsdp" in modes:
        m = fsdp_model(model, world)
        opt = sandbox.create(rule, groups(m, model), **kw)
        rec = {"collectives": [], "verdicts": []}
        path = None if dcp_dir is None else os.path.join(dcp_dir, f"{world}_{rule}_{model}")
        train(m, opt, model, rank, 0, SAVE_AT, rec)
        if path is not None:
            save(m, opt, path, world)
        train(m, opt, model, rank, SAVE_AT, STEPS, rec)
        if model == "stacked":  # verdicts per replica: this rank holds replicas start:start+length
            start, length = chunk_bounds(5, world, rank)
            rverdicts = [[None if c is None else c[start:start + length] for c in step] for step in rverdicts]
        res["fsdp"] = {**compare(m, opt, ref, ropt, world, rank, True), **rec,
                       "verdicts_equal_reference": rec["verdicts"] == rverdicts,
                       "impl": opt.last_impl}
        if path is not None:
            try:
                res["fsdp"]["resumed"] = resume(rule, model, kw, world, rank, m, opt, path)
            except (Exception, _DCPError):
                res["fsdp"]["resumed"] = math.inf
                res["fsdp"]["resumed_error"] = traceback.format_exc()[-3000:]
            dist.barrier(group=MESHES[world].get_group())
    if "ddp" in modes:
        from torch.nn.parallel import DistributedDataParallel as DDP

        m = make(model)
        dm = DDP(m, process_group=MESHES[world].get_group())
        opt = sandbox.create(rule, groups(m, model), **kw)
        rec = {"collectives": [], "verdicts": []}
        train(dm, opt, model, rank, 0, STEPS, rec)
        res["ddp"] = {**compare(m, opt, ref, ropt, world, rank, False), **rec,
                      "verdicts_equal_reference": rec["verdicts"] == rverdicts,
                      "impl": opt.last_impl}
    return res


def save(m, opt, path, world):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    dcp.save({"model": get_model_state_dict(m), "optim": get_optimizer_state_dict(m, opt)},
             checkpoint_id=path, process_group=MESHES[world].get_group())


def resume(rule, model, kw, world, rank, m_full, opt_full, path):
    """A fresh model and optimizer dcp.load the checkpoint saved at step SAVE_AT and train to STEPS:
    the worst relative difference to the uninterrupted run (parameters and state)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict, get_optimizer_state_dict, set_model_state_dict, set_optimizer_state_dict)

    m2 = fsdp_model(model, world)
    with torch.no_grad():  # a different start, overwritten by the load
        for p in m2.parameters():
            local(p).mul_(0.5)
    opt2 = sandbox.create(rule, groups(m2, model), **kw)
    sd = {"model": get_model_state_dict(m2), "optim": get_optimizer_state_dict(m2, opt2)}
    dcp.load(sd, checkpoint_id=path, process_group=MESHES[world].get_group())
    set_model_state_dict(m2, sd["model"])
    set_optimizer_state_dict(m2, opt2, sd["optim"])
    train(m2, opt2, model, rank, SAVE_AT, STEPS)
    worst = 0.0
    for p, q in zip(m2.parameters(), m_full.parameters()):
        worst = max(worst, rel_err(local(p), local(q)))
        if set(opt2.state[p]) != set(opt_full.state[q]):
            return math.inf
        for k, v in opt_full.state[q].items():
            worst = max(worst, rel_err(local(opt2.state[p][k]), local(v)))
    return worst


# --- bad input -------------------------------------------------------------------------------------
class unit_norm(Stage):
    """u/‖u‖ over the whole tensor, written the old way (plain update, no declaration)."""

    name = "unit_norm"
    traits = StageTraits(degree=(0.0, 0.0), preconditions=True)

    def update(self, u, ctx):
        return u / u.norm().clamp_min(1e-30)


class unit_norm_requested(Stage):
    """The same u/‖u‖, written with a request: the batched local path under FSDP2."""

    name = "unit_norm_requested"
    traits = StageTraits(degree=(0.0, 0.0), preconditions=True)
    reductions = (("sum", "tensor"),)

    def apply(self, flow, ctx):
        sq = yield Reduce("sum", "tensor", flow.u.square().sum())
        return flow.with_u(flow.u / sq.sqrt().clamp_min(1e-30))


class old_rms(Stage):
    """The old two-sweep protocol (reduces/reduce/update), undeclared: u / sqrt(mean of u² over all
    parameters)."""

    name = "old_rms"
    traits = StageTraits(degree=(0.0, 0.0), preconditions=True)
    reduces = True

    def reduce(self, u, ctx):
        return (u * u).sum(), u.numel()

    def update(self, u, ctx):
        return u / ctx.globals[self.name].sqrt().clamp_min(1e-30)


class median_scale(Stage):
    """Declares a reduction the core cannot distribute."""

    name = "median_scale"
    traits = StageTraits()
    reductions = (("median", "tensor"),)

    def update(self, u, ctx):
        return u


class signed(Stage):
    """An old-style element-wise user stage that declares itself element-wise."""

    name = "signed"
    traits = StageTraits(degree=(0.0, 0.0))
    reductions = ()

    def update(self, u, ctx):
        return torch.sign(u) * u.abs().sqrt()


def _user_rule(name, stage):
    register(RuleSpec(
        name=name, summary="test", paper="test", reference="test",
        build=lambda hp: chain(stage(), radial_projection() if hp["project"] else None,
                               add_decayed_weights(), scale_by_lr()),
        flags=(H.flag("project", True, "projection", "test", structural=True),),
        defaults_from={"lr": (0.01, "test"), "weight_decay": (0.0, "test"),
                       "delta": (0.1, "test"), "wd_ratio": (0.1, "test"), "proj_eps": (1e-8, "test"),
                       "project_momentum": (False, "test")}))


def expect_refusal(fn, *needles) -> str:
    try:
        fn()
    except (ValueError, sandbox.NonFiniteGradientError) as e:
        msg = str(e)
        missing = [n for n in needles if n not in msg]
        if missing:
            return f"refused, but the message lacks {missing}: {msg}"
        return "ok"
    return "not refused"


def case_bad_input(world, rank) -> dict:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor, init_device_mesh

    out = {}
    mesh = MESHES[world]
    # a shard along dim 1
    torch.manual_seed(0)
    w = nn.Parameter(distribute_tensor(torch.randn(4, 6, dtype=torch.float64), mesh, [Shard(1)]))
    w.grad = distribute_tensor(torch.randn(4, 6, dtype=torch.float64), mesh, [Shard(1)])
    before = local(w).clone()
    opt = sandbox.create("adamp", [w])
    out["shard1"] = expect_refusal(opt.step, "group 0 param 0", "Shard(dim=1)")
    out["shard1_unchanged"] = bool(torch.equal(local(w), before)) and not opt.state.get(w)
    # a 2-D mesh (HSDP-like)
    mesh2 = init_device_mesh("cpu", (1, world))
    w2 = nn.Parameter(distribute_tensor(torch.randn(4, 6, dtype=torch.float64), mesh2, [Replicate(), Shard(0)]))
    w2.grad = distribute_tensor(torch.randn(4, 6, dtype=torch.float64), mesh2, [Replicate(), Shard(0)])
    out["mesh2d"] = expect_refusal(sandbox.create("sgdp", [w2], lr=0.1).step, "group 0 param 0", "2-D mesh")
    # Replicate() DTensors (every rank holds the whole tensor): local statistics are whole, no
    # collective at all; Adai's global mean counts each once
    torch.manual_seed(3)
    full = [torch.randn(6, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    grads = [[torch.randn_like(f) for f in full] for _ in range(3)]
    plain = [nn.Parameter(f.clone()) for f in full]
    rep = [nn.Parameter(distribute_tensor(f.clone(), mesh, [Replicate()])) for f in full]
    o1, o2 = sandbox.create("adaip", plain, lr=0.1), sandbox.create("adaip", rep, lr=0.1)
    coll = []
    for gs in grads:
        for p, q, g in zip(plain, rep, gs):
            p.grad, q.grad = g.clone(), distribute_tensor(g.clone(), mesh, [Replicate()])
        o1.step()
        with Collectives(dispatched=True) as c:
            o2.step()
        coll.append(c.count)
    out["replicate"] = [max(rel_err(local(q), p) for p, q in zip(plain, rep)), max(coll)]
    # user stages: undistributable (refused), old-style reducing undeclared (refused under FSDP2,
    # runs under DDP), undeclared (DTensor semantics: exact), declared element-wise (local: exact)
    users = {"dist_unit_norm": unit_norm, "dist_median": median_scale, "dist_signed": signed,
             "dist_old_rms": old_rms, "dist_unit_norm_requested": unit_norm_requested}
    for n, st in users.items():
        _user_rule(n, st)
    try:
        for name, needles in (("dist_median", ("median_scale", "'median'", "Shard(dim=0)")),
                              ("dist_old_rms", ("old_rms", "declares no reductions", "Shard(dim=0)"))):
            m = fsdp_model("net", world)
            opt = sandbox.create(name, m.parameters())
            loss_of(m, "net", 0, rank).backward()
            before = [local(p).clone() for p in m.parameters()]
            out[name] = expect_refusal(opt.step, "group 0 param 0", *needles)
            out[name + "_unchanged"] = all(torch.equal(local(p), b) for p, b in zip(m.parameters(), before)) \
                and not any(opt.state.values())
        for name, modes in (("dist_signed", ("fsdp", "ddp")), ("dist_unit_norm", ("fsdp", "ddp")),
                            ("dist_unit_norm_requested", ("fsdp", "ddp")), ("dist_old_rms", ("ddp",))):
            res = case_rule(name, "net", world, rank, None, modes)
            out[name + "_runs"] = {mode: [res[mode]["params"], res[mode]["state"],
                                          max(c[0] for c in res[mode]["collectives"])] for mode in modes}
    finally:
        for n in users:
            unregister(n)
    # a non-finite gradient in ONE rank's shard: every rank refuses (or skips) and nothing changes
    for mode in ("raise", "skip"):
        m = fsdp_model("net", world)
        opt = sandbox.create("adaip", m.parameters(), lr=0.1, nonfinite=mode)
        train(m, opt, "net", rank, 0, 1)
        opt.zero_grad()
        loss_of(m, "net", 1, rank).backward()
        if rank == world - 1:
            local(m.fc.weight.grad).view(-1)[0] = math.nan
        before = [local(p).clone() for p in m.parameters()]
        state = [{k: local(v).clone() for k, v in opt.state[p].items()} for p in m.parameters()]
        if mode == "raise":
            out["nonfinite_raise"] = expect_refusal(opt.step, f"rank(s) [{world - 1}]")
        else:
            opt.step()
            out["nonfinite_skip"] = opt.skipped_steps == 1
        out[f"nonfinite_{mode}_unchanged"] = all(
            torch.equal(local(p), b) for p, b in zip(m.parameters(), before)) and all(
            torch.equal(local(opt.state[p][k]), v) for p, s in zip(m.parameters(), state) for k, v in s.items())
    return out


try:  # DCP's CheckpointException derives from BaseException
    from torch.distributed.checkpoint.api import CheckpointException as _DCPError
except ImportError:  # pragma: no cover
    _DCPError = Exception


# --- main -----------------------------------------------------------------------------------------
def main(spec_path: str, rank: int) -> None:
    """Run the job's cases; a case of world size w runs on ranks 0 … w−1 (the others wait)."""
    global DEVICE
    from torch.distributed.device_mesh import DeviceMesh

    spec = json.loads(open(spec_path).read())
    world = spec["world"]
    torch.set_num_threads(1)
    DEVICE = spec.get("device", "cpu")
    if DEVICE == "cuda":
        torch.cuda.set_device(rank)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(spec["port"]))
    dist.init_process_group(spec.get("backend", "gloo"), rank=rank, world_size=world,
                            timeout=timedelta(seconds=40))
    for w in sorted({c["world"] for c in spec["cases"]}):  # every rank creates every mesh
        MESHES[w] = DeviceMesh(DEVICE, list(range(w)))
    result: dict = {"rank": rank, "world": world, "cases": {}}
    dcp_dir = os.path.join(spec["tmp"], "dcp")
    for case in spec["cases"]:
        w = case["world"]
        if rank >= w:
            dist.barrier()
            continue
        if case["kind"] == "rule":
            rules = sandbox.available() if case["rules"] == "all" else case["rules"]
            for rule in rules:
                key = f"{w}/{rule}/{case['model']}"
                t0 = time.perf_counter()
                try:
                    result["cases"][key] = case_rule(rule, case["model"], w, rank,
                                                     dcp_dir if case.get("dcp") else None, case["modes"])
                except (Exception, _DCPError):  # recorded for the test; the ranks resynchronise below
                    result["cases"][key] = {"error": traceback.format_exc()}
                result["cases"][key]["seconds"] = time.perf_counter() - t0
                dist.barrier(group=MESHES[w].get_group())
        elif case["kind"] == "crash":  # the launcher's own test: one rank fails, the others wait
            if rank == case["rank"]:
                raise RuntimeError(f"deliberate failure on rank {rank}")
            dist.barrier()
        elif case["kind"] == "bad_input":
            result["cases"][f"{w}/bad_input"] = case_bad_input(w, rank)
        dist.barrier()
    dist.destroy_process_group()
    with open(os.path.join(spec["tmp"], f"result{rank}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    try:
        main(sys.argv[1], int(sys.argv[2]))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
