"""``python -m sandbox verify``: the smoke run, the runner's contract (exit status, resume,
--force, --only, outputs) with stand-in families, and one-line errors with exit status 2."""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from sandbox.cli.main import UsageError, main
from sandbox.verify.base import ROW_COLUMNS, VerifyConfig
from sandbox.verify.rows import make_row, progress, rows_frame
from sandbox.verify.runner import run_verify

ROOT = Path(__file__).resolve().parents[1]


def test_quick_smoke_run_of_the_identities(tmp_path):
    out = tmp_path / "v"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "sandbox", "verify", "--quick", "--only",
                           "identity.*", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    head = proc.stdout.splitlines()[0].split()
    assert head == ["claim", "rule", "predicted", "measured", "95%", "interval", "error", "tolerance",
                    "verdict"]
    assert "claim" not in proc.stderr.split("\n")[0][:5]  # the table goes to stdout
    table = pd.read_csv(out / "verify.csv")
    assert list(table.columns) == list(ROW_COLUMNS)
    assert table["claim"].str.startswith("identity.").all() and len(table) > 20
    assert set(table["verdict"]) <= {"PASS", "REPORTED"}
    report = (out / "report.md").read_text()
    assert "identities/identities.png" in report and (out / "identities" / "identities.png").exists()
    assert json.loads((out / "verify_state.json").read_text())["done"] == ["identities"]


# --- the runner with stand-in families -----------------------------------------------------------
def _family(name, verdicts, calls, claims=None, plot_error=False):
    mod = types.ModuleType(f"fake_{name}")
    mod.TITLE = f"Fake family {name}"
    mod.CLAIMS = tuple(claims or (f"{name}.a", f"{name}.b"))

    def plan(cfg):
        return [(c, "sgd") for c in mod.CLAIMS]

    def run(cfg):
        calls.append(name)
        rows = []
        for claim, v in zip(progress(cfg, [c for c, _ in plan(cfg)]), verdicts):
            if cfg.only and not __import__("fnmatch").fnmatchcase(claim, cfg.only):
                continue
            measured = {"PASS": 1.0, "FAIL": 2.0, "REPORTED": 5.0}[v]
            rows.append(make_row(name, claim, "sgd", "x=1", 1.0, measured, 0.1,
                                 status="open" if v == "REPORTED" else "published"))
        return rows_frame(rows)

    def plot(results, cfg):
        if plot_error:
            raise RuntimeError("no figure today")
        p = cfg.family_dir(name) / f"{name}.png"
        p.write_bytes(b"\x89PNG fake")
        return [p]

    mod.plan, mod.run, mod.plot = plan, run, plot
    return mod


def test_exit_status_outputs_and_resume(tmp_path, capsys):
    calls = []
    fams = {"one": _family("one", ["PASS", "REPORTED"], calls),
            "two": _family("two", ["PASS", "PASS"], calls, plot_error=True)}
    cfg = VerifyConfig(quick=True, out=tmp_path)
    table, status = run_verify(cfg, families=fams, show_progress=False)
    assert status == 0 and calls == ["one", "two"] and len(table) == 4
    out = capsys.readouterr().out
    assert "REPORTED" in out and "4 checks: 3 PASS, 0 FAIL, 0 INCONCLUSIVE, 1 REPORTED" in out
    report = (tmp_path / "report.md").read_text()
    assert "one/one.png" in report and "figure failed: RuntimeError: no figure today" in report
    # same options: both families are resumed from disk, nothing reruns
    table2, status2 = run_verify(VerifyConfig(quick=True, out=tmp_path), families=fams,
                                 show_progress=False)
    assert calls == ["one", "two"] and status2 == 0 and len(table2) == 4
    assert "resumed from saved results: one, two" in (tmp_path / "report.md").read_text()
    # --force reruns; other options (not quick) start over too
    run_verify(VerifyConfig(quick=True, out=tmp_path), force=True, families=fams,
               show_progress=False)
    run_verify(VerifyConfig(quick=False, out=tmp_path), families=fams, show_progress=False)
    assert calls == ["one", "two"] * 3


def test_a_failing_claim_gives_exit_status_one_and_a_crash_keeps_earlier_families(tmp_path):
    calls = []
    fams = {"one": _family("one", ["PASS", "FAIL"], calls)}
    _, status = run_verify(VerifyConfig(out=tmp_path), families=fams, show_progress=False)
    assert status == 1
    assert "## Failures" in (tmp_path / "report.md").read_text()
    broken = _family("two", ["PASS", "PASS"], calls)
    broken.run = lambda cfg: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        run_verify(VerifyConfig(out=tmp_path / "b"), families={"one": fams["one"], "two": broken},
                   show_progress=False)
    saved = pd.read_csv(tmp_path / "b" / "verify.csv")
    assert set(saved["family"]) == {"one"}  # written as soon as family one finished


def test_only_filters_claims_and_rejects_a_pattern_that_matches_nothing(tmp_path):
    calls = []
    fams = {"one": _family("one", ["PASS", "PASS"], calls),
            "two": _family("two", ["PASS", "PASS"], calls)}
    table, _ = run_verify(VerifyConfig(out=tmp_path, only="two.b"), families=fams,
                          show_progress=False)
    assert calls == ["two"] and list(table["claim"]) == ["two.b"]
    with pytest.raises(UsageError, match="matches no claim"):
        run_verify(VerifyConfig(out=tmp_path, only="nothing.*"), families=fams,
                   show_progress=False)


# --- bad input: one line on stderr, exit status 2 ------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--only", "no.such.claim*"], "matches no claim"),
    (["--device", "tpu"], "unknown --device 'tpu'"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    status = main(["verify", "--quick", "--out", str(tmp_path), "--no-progress", *args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and message in err and err.startswith("python -m sandbox verify:")


def test_cuda_without_cuda_is_a_usage_error(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    assert main(["verify", "--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err


def test_unwritable_output_folder_is_a_usage_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["verify", "--quick", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to --out" in err


def test_progress_bar_is_weighted_by_measured_cost_not_by_count():
    """family_cost: a family's measured CPU seconds, split over its work units by their weights
    and scaled by the part of the plan that --only keeps."""
    from sandbox.verify.runner import family_cost

    fam = types.SimpleNamespace(
        COST={"quick": 10.0, "full": 100.0},
        plan=lambda cfg: [u for u in [("a.x", "r", 1.0), ("a.y", "r", 3.0)]
                          if cfg.only is None or u[0] == cfg.only])
    cost, shares = family_cost(fam, VerifyConfig(quick=True))
    assert cost == 10.0 and shares == [2.5, 7.5]
    cost, shares = family_cost(fam, VerifyConfig(quick=False, only="a.y"))
    assert cost == 75.0 and shares == [75.0]
    from sandbox.verify.runner import load_families

    assert all(set(getattr(m, "COST", {})) == {"quick", "full"} for m in load_families().values())
