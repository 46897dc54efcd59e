"""``python -m sandbox bench``: the smoke test of the whole report, and its input errors.

No timing is asserted (timings on a shared machine are noise); what is checked is that every
section is produced and saved, that the tables hold what the report says they hold, and that a
rerun reuses the saved sections.
"""
import importlib
import subprocess
import sys

import pandas as pd
import pytest
import torch

from sandbox.benchmarks import report
from sandbox.benchmarks.contenders import BASELINE, SGD_BASELINE
from sandbox.cli.main import main


def _stub(section):
    """The other issues' benchmarks have their own tests; here only their wiring is checked."""
    def run(quick=False, device="cpu"):
        assert quick is True and device == "cpu"
        return pd.DataFrame([{"benchmark": section, "rule": "adamp", "speedup": 1.0}])
    return run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    for section, (module, fn) in report.OTHER.items():
        try:
            mp.setattr(importlib.import_module(module), fn, _stub(section))
        except ImportError:
            pass  # absent: the report must mark it "not available"
    try:
        code = main(["bench", "--quick", "--out", str(out), "--no-progress", "--repeats", "2",
                     "--threads", "1"])
    finally:
        mp.undo()
    return code, out


def test_quick_bench_writes_every_section(quick_run, capsys):
    code, out = quick_run
    assert code == 0
    for name in ("bandwidth.csv", "steps_resnet.csv", "steps_small.csv", "steps_raw.csv",
                 "goals.csv", "bench.png"):
        assert (out / name).exists(), name
    for section in ("replicas", "stacked_seeds", "probes"):  # measured, or marked not available
        df = pd.read_csv(out / f"{section}.csv")
        assert "status" in df.columns and set(df["status"]) <= {"ok", "not available"}


def test_step_table_contents(quick_run):
    _, out = quick_run
    steps = pd.concat([pd.read_csv(out / f"steps_{s}.csv") for s in ("resnet", "small")])
    ok = steps[steps["status"] == "ok"]
    for rule in ("sgd", "sgdp", "adam", "adamw", "adamp", "adai", "rfadamw"):
        assert f"sandbox {rule}" in set(ok["contender"])
    assert {BASELINE, SGD_BASELINE, "torch AdamW (foreach)", "torch SGD momentum (foreach)"} <= set(ok["contender"])
    # the sandbox rules ran on the fast path, their references on the reference path
    impl = dict(zip(ok["contender"] + "|" + ok["set"], ok["impl"]))
    assert all(v == "fast" for k, v in impl.items() if k.startswith("sandbox") and "reference" not in k)
    assert all(v == "reference" for k, v in impl.items() if "(reference)" in k)
    base = ok[ok["contender"] == BASELINE]
    assert (base["ratio"] == 1.0).all()  # ratios are taken against the baseline of the same repeat
    assert (ok["ms_q25"] <= ok["ms_median"]).all() and (ok["ms_median"] <= ok["ms_q75"]).all()
    sb = ok[ok["source"] == "sandbox"]  # --quick measures memory for the sandbox and baselines
    assert (sb["peak_extra_bytes"] >= 0).all() and (ok["min_bytes"] > 0).all()
    assert (ok[ok["contender"] == BASELINE]["peak_extra_bytes"] >= 0).all()
    # Adam-type rules move at least 28 B per fp32 parameter, SGD with momentum 20 B
    adamw = ok[ok["contender"] == "sandbox adamw"].iloc[0]
    assert adamw["min_bytes"] == 28 * adamw["params"]
    raw = pd.read_csv(out / "steps_raw.csv")
    assert raw.groupby(["set", "contender"]).size().min() == 2  # --repeats 2


def test_goals_table(quick_run):
    _, out = quick_run
    goals = pd.read_csv(out / "goals.csv")
    assert {"set", "goal", "measured", "q25", "q75", "target", "met"} <= set(goals.columns)
    names = set(goals["goal"])
    assert "sandbox adamp / torch AdamW (fused)" in names
    assert "official AdamP / sandbox adamp (speed-up)" in names
    assert any("peak extra memory" in g for g in names)


def test_rerun_reuses_saved_sections(quick_run, capsys):
    _, out = quick_run
    code = main(["bench", "--quick", "--out", str(out), "--no-progress", "--only", "bandwidth,steps"])
    assert code == 0
    text = capsys.readouterr().out
    assert "reusing" in text and "== goals" in text


@pytest.mark.parametrize("args,message", [
    (["--device", "tpu"], "invalid --device"),
    (["--sets", "imagenet"], "invalid --sets"),
    (["--only", "everything"], "invalid --only"),
    (["--threads", "0"], "invalid --threads"),
])
def test_bad_input_is_one_line_exit_2(args, message, tmp_path, capsys):
    code = main(["bench", "--quick", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert not any(tmp_path.iterdir())  # refused before measuring anything


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message when CUDA is absent")
def test_cuda_absent_is_reported_cleanly(tmp_path, capsys):
    code = main(["bench", "--quick", "--device", "cuda", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no CUDA device" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_full_quick_bench_command_line(tmp_path):
    """The real thing, with the other issues' quick benchmarks (a few minutes on 2 busy cores)."""
    r = subprocess.run([sys.executable, "-m", "sandbox", "bench", "--quick", "--out", str(tmp_path),
                        "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "== goals" in r.stdout and (tmp_path / "bench.png").exists()
    for section in ("replicas", "stacked_seeds", "probes"):
        assert (tmp_path / f"{section}.csv").exists()


def test_format_report_marks_unavailable_sections():
    res = {"replicas": pd.DataFrame([{"benchmark": "replicas", "status": "not available"}])}
    assert "not available" in report.format_report(res)
