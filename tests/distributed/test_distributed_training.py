"""Every registered rule under FSDP2 (``fully_shard``) and DDP, gloo on CPU, against one process.

One spawned job of 3 processes runs every case at world sizes 2 (ranks 0 and 1, a 2-rank mesh)
and 3, so that shards are uneven: the net's 5-channel conv, 7-row linear + LayerNorm, and a 2-row
head with an empty shard at 3 ranks (:mod:`worker`, started by :mod:`launch` with a deadline: a
rank's exception fails the tests with its traceback, a stuck job is killed). Every rule is taken from
``sandbox.available()`` when the tests are collected, so new rules are covered.

Per rule and world size (float64, 6 steps, each rank its own micro-batch; the single-process run
takes the mean of the micro-batch losses):
- final parameters AND optimizer state against the single-process run: relative error ≤ 1e-12,
  or ≤ 1e-7 for rules whose update is scale-free in the gradient (homogeneity 0: Adam-type,
  sign, trust ratios), whose g/√v-like normalisation magnifies summation order;
- the projection's verdicts at every step: identical on every rank, equal to the single process;
- collectives per ``step()`` ≤ 2 (counted by ``CommDebugMode``: c10d calls and DTensor's
  implicit ones; and by wrapping ``torch.distributed``); DDP: none;
- ``torch.distributed.checkpoint`` save at step 3 → load into a fresh model/optimizer →
  continue to step 6 equals the uninterrupted run bit for bit;
- replicas (``replica_dims=1``, the replica axis sharded) for the projected/global rules;
- bad input (world size 3): refusals naming the parameter and its placement, nothing changed; a
  non-finite gradient on one rank's shard refused (or skipped) by every rank together.
No timing is asserted.
"""
from __future__ import annotations

import math

import pytest
import torch

import sandbox
from launch import JobFailed, run_job

RULES = sandbox.available()
STACKED = ["adamp", "sgdp", "adaip", "adaiwp"]
WORLDS = [2, 3]
# One job of 3 processes: the cases of world size 2 run on ranks 0 and 1 (a 2-rank mesh and
# process group), those of world size 3 on all three (one start-up of torch instead of two).
JOB = {"cases": [
    {"kind": "rule", "world": 2, "rules": "all", "model": "net", "modes": ["fsdp", "ddp"], "dcp": True},
    {"kind": "rule", "world": 3, "rules": "all", "model": "net", "modes": ["fsdp"], "dcp": True},
    {"kind": "rule", "world": 2, "rules": STACKED, "model": "stacked", "modes": ["fsdp"]},
    {"kind": "rule", "world": 3, "rules": STACKED, "model": "stacked", "modes": ["fsdp"]},
    {"kind": "bad_input", "world": 3},
]}
_RESULTS: list = []

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or
                                not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def results() -> list[dict]:
    """Each rank's results of the job (run once, on first use)."""
    if not _RESULTS:
        try:
            _RESULTS.append(run_job(max(WORLDS), JOB, timeout=240))
        except AssertionError as e:
            _RESULTS.append(e)
    if isinstance(_RESULTS[0], AssertionError):
        raise _RESULTS[0]
    return _RESULTS[0]


def tolerance(rule: str) -> float:
    return 1e-7 if sandbox.info(rule).homogeneity == 0 else 1e-12


def case(world: int, key: str, mode: str) -> list[dict]:
    """The case ``key`` in ``mode`` on every rank (a rank's recorded error fails the test)."""
    out = []
    for r in results()[:world]:
        c = r["cases"].get(f"{world}/{key}")
        assert c is not None, f"{key}: not run on rank {r['rank']} (registered after the job started?)"
        assert "error" not in c, f"{key} failed on rank {r['rank']} of {world}:\n{c['error']}"
        out.append(c[mode])
    return out


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("rule", RULES)
def test_fsdp2_equals_one_process(rule, world):
    tol = tolerance(rule)
    for rank, c in enumerate(case(world, f"{rule}/net", "fsdp")):
        assert c["params"] <= tol, f"rank {rank}: parameter {c['worst']} off by {c['params']:.2e} (tol {tol})"
        assert c["state"] <= tol, f"rank {rank}: state {c.get('worst_state')} off by {c['state']:.2e} (tol {tol})"


@pytest.mark.parametrize("rule", RULES)
def test_ddp_equals_one_process(rule):
    tol = tolerance(rule)
    for rank, c in enumerate(case(2, f"{rule}/net", "ddp")):
        assert c["params"] <= tol and c["state"] <= tol, (rank, c["params"], c["state"])
        assert all(n[0] == 0 for n in c["collectives"]), f"DDP: the optimizer took collectives {c['collectives']}"


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("rule", RULES)
def test_verdicts_agree_on_every_rank_and_with_one_process(rule, world):
    runs = case(world, f"{rule}/net", "fsdp")
    assert all(c["verdicts_equal_reference"] for c in runs), "verdicts differ from the single process"
    assert all(c["verdicts"] == runs[0]["verdicts"] for c in runs), "verdicts differ between ranks"


@pytest.mark.parametrize("world", WORLDS)
def test_both_views_fire_in_the_test_net(world):
    """The net exercises the projection: the channel view (conv + BN) and the layer view (linear
    + LayerNorm) both fire under adamp and sgdp (codes 1 and 2)."""
    for rule in ("adamp", "sgdp"):
        seen = {x for step in case(world, f"{rule}/net", "fsdp")[0]["verdicts"] for codes in step
                if codes for x in codes}
        assert {1, 2} <= seen, (rule, seen)


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("rule", RULES)
def test_at_most_two_collectives_per_step(rule, world):
    for rank, c in enumerate(case(world, f"{rule}/net", "fsdp")):
        # per step: [max of the counts, torch.distributed calls, CommDebugMode's (-1: not taken
        # at this step), the optimizer's own count]
        counts = c["collectives"]
        assert max(n[0] for n in counts) <= 2, f"rank {rank}: collectives per step {counts}"
        assert sum(n[2] >= 0 for n in counts) >= 2, "CommDebugMode counted no step"
        assert all(n[1] == n[3] and n[2] in (-1, n[1]) for n in counts), f"rank {rank}: counts disagree {counts}"


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("rule", RULES)
def test_dcp_save_load_continue_equals_uninterrupted(rule, world):
    for rank, c in enumerate(case(world, f"{rule}/net", "fsdp")):
        assert "resumed_error" not in c, f"rank {rank}: save/load failed:\n{c['resumed_error']}"
        assert c["resumed"] == 0.0, f"rank {rank}: the resumed run differs by {c['resumed']:.2e}"


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("rule", STACKED)
def test_replicas_sharded_along_the_replica_axis(rule, world):
    tol = tolerance(rule)
    runs = case(world, f"{rule}/stacked", "fsdp")
    for rank, c in enumerate(runs):
        assert c["params"] <= tol and c["state"] <= tol, (rank, c["params"], c["state"], c.get("worst_state"))
        assert c["verdicts_equal_reference"]
        assert max(n[0] for n in c["collectives"]) <= 2, c["collectives"]


BAD = {
    "shard1": "a parameter sharded along dim 1 is refused, naming it and its placement",
    "mesh2d": "a 2-D mesh (HSDP) is refused",
    "dist_median": "a stage declaring a reduction the core cannot distribute is refused",
    "dist_old_rms": "an old-style reducing stage without declarations is refused when sharded",
    "nonfinite_raise": "a NaN in one rank's shard: every rank raises",
}


@pytest.mark.parametrize("item", sorted(BAD))
def test_bad_input_is_refused_before_any_write(item):
    for r in results():
        got = r["cases"]["3/bad_input"]
        assert got[item] == "ok", f"rank {r['rank']}: {BAD[item]}: {got[item]}"
        unchanged = got.get(item + "_unchanged", True)
        assert unchanged is True, f"rank {r['rank']}: {item}: something was written"


def test_replicated_dtensors_take_no_collective():
    for r in results():
        err, coll = r["cases"]["3/bad_input"]["replicate"]
        assert err <= 1e-12 and coll == 0, (r["rank"], err, coll)


def test_nonfinite_skip_is_taken_by_every_rank():
    for r in results():
        got = r["cases"]["3/bad_input"]
        assert got["nonfinite_skip"] is True and got["nonfinite_skip_unchanged"] is True


@pytest.mark.parametrize("name,modes,tol,max_coll", [
    ("dist_signed", ("fsdp", "ddp"), 1e-7, 2),  # declared element-wise: the local path
    ("dist_unit_norm", ("fsdp", "ddp"), 1e-7, math.inf),  # undeclared: DTensor semantics, exact
    ("dist_unit_norm_requested", ("fsdp", "ddp"), 1e-7, 2),  # the same with a request: batched
    ("dist_old_rms", ("ddp",), 1e-7, 0),  # old two-sweep protocol on plain tensors
])
def test_user_stages_stay_exact(name, modes, tol, max_coll):
    for r in results():
        runs = r["cases"]["3/bad_input"][name + "_runs"]
        for mode in modes:
            params, state, coll = runs[mode]
            assert params <= tol and state <= tol, (r["rank"], mode, params, state)
            assert coll <= (max_coll if mode == "fsdp" else 0), (mode, coll)


def test_a_failing_rank_fails_the_job_with_its_traceback():
    """Rank 1 raises while rank 0 waits in a collective: the job fails at once with rank 1's
    traceback (rank 0 is killed), it does not hang until a timeout."""
    with pytest.raises(JobFailed, match="deliberate failure on rank 1") as e:
        run_job(2, {"cases": [{"kind": "crash", "world": 2, "rank": 1}]}, timeout=120)
    assert "Traceback" in str(e.value) and "rank 1 of the 2-rank job failed" in str(e.value)


@pytest.mark.gpu
def test_fsdp2_nccl_world_size_one():
    """CUDA path (world size 1, NCCL): every rule equals one process on the GPU."""
    got = run_job(1, {"cases": [{"kind": "rule", "world": 1, "rules": "all", "model": "net",
                                 "modes": ["fsdp"], "dcp": True}], "device": "cuda", "backend": "nccl"},
                  timeout=300)
    for rule in RULES:
        c = got[0]["cases"][f"1/{rule}/net"]
        assert "error" not in c, c.get("error")
        assert c["fsdp"]["params"] <= tolerance(rule) and c["fsdp"]["state"] <= tolerance(rule), rule
