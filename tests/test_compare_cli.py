"""``python -m sandbox compare``: outputs, resuming, divergence, and one-line errors for bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import sandbox.compare.protocol as protocol
import sandbox.training as training
from sandbox.cli.main import main
from sandbox.compare import CompareConfig, ResultStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--problem", "digits-bnmlp", "--epochs", "1", "--quiet", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


def _run(args, capsys):
    rc = main(["compare", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _files(out: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in out.glob(pattern))


def test_defaults_run_writes_everything_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    # float64: a resumed group may train on the other engine (loop vs stacked), which is equal
    # to round-off; in float64 that is ~1e-12 even after Adam's amplification
    # sgdp's lr has no published default: fixed here (the tuning rule has its own test)
    args = [*QUICK, "--defaults", "--optimizers", "sgdp,adamw", "--seeds", "2", "--dtype", "float64",
            "--hp", "sgdp.lr=0.1", "--out", str(out)]
    rc, stdout, _ = _run(args, capsys)
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["seeds"] == 2 and manifest["config"]["mode"] == "defaults"
    assert _files(out / "runs", "*.json") == [
        "defaults-adamw-lr0.001-seed0.json", "defaults-adamw-lr0.001-seed1.json",
        "defaults-sgdp-lr0.1-seed0.json", "defaults-sgdp-lr0.1-seed1.json"]
    curve = pd.read_csv(out / "runs" / "defaults-sgdp-lr0.1-seed1.csv")
    steps_per_epoch = 1257 // 64
    assert curve["step"].tolist() == [0, steps_per_epoch] and (curve["seed"] == 1).all()
    summary = pd.read_csv(out / "summary.csv")
    assert summary["rule"].tolist() == ["sgdp", "adamw"]
    for col in ("test_acc", "test_acc_ci95", "test_loss", "test_loss_ci95", "steps_to_target", "diverged"):
        assert col in summary
    assert (summary["diverged"] == 0).all() and (summary["test_acc"] > 0.5).all()
    assert "sgdp" in stdout and "±" in stdout
    assert {"curves.png", "effective_step.png"} <= set(_files(out / "figures", "*.png"))
    probes = pd.read_csv(out / "probes" / "defaults-sgdp-lr0.1-seed0.csv")
    assert {"layer", "delta", "scale_invariant"} <= set(probes.columns) and (probes["seed"] == 0).all()
    record = json.loads((out / "runs" / "defaults-sgdp-lr0.1-seed0.json").read_text())
    assert record["status"] == "finished" and record["hp"]["lr"] == [0.1, "given"]

    # the same command again: nothing is trained
    monkeypatch.setattr(protocol, "train_seeds", lambda *a, **k: pytest.fail("should resume"))
    assert _run(args, capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary)

    # a crash during one run: its record is missing and its curve partial -> only it reruns
    (out / "runs" / "defaults-adamw-lr0.001-seed1.json").unlink()
    partial = out / "runs" / "defaults-adamw-lr0.001-seed1.csv"
    partial.write_text(partial.read_text().splitlines()[0] + "\n")
    calls = []
    real = training.train_seeds
    monkeypatch.setattr(protocol, "train_seeds", lambda p, rule, seeds, *a, **k:
                        calls.append((rule, list(seeds))) or real(p, rule, seeds, *a, **k))
    assert _run(args, capsys)[0] == 0
    assert calls == [("adamw", [1])]
    # the results agree; the rerun seed's wall time and engine (a loop: one seed) are its own
    timing = ["engine", "train_s_to_target"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv").drop(columns=timing),
                                  summary.drop(columns=timing), rtol=1e-9)


def test_tuning_picks_the_best_lr_and_records_divergence(tmp_path, capsys):
    out = tmp_path / "tune"
    rc, _, _ = _run([*QUICK, "--optimizers", "sgd", "--lr-grid", "0.01,0.3,1e10", "--seeds", "2",
                     "--probe-every", "0", "--out", str(out)], capsys)
    assert rc == 0
    tuning = pd.read_csv(out / "tuning.csv")
    assert tuning["lr"].tolist() == [0.01, 0.3, 1e10]  # 1e10 overflows float32 within the epoch
    assert tuning.set_index("lr").loc[1e10, "status"] == "diverged"  # recorded, not dropped
    finished = tuning[tuning["status"] == "finished"]
    best = finished.sort_values(["valid_acc", "valid_loss"], ascending=[False, True])["lr"].iloc[0]
    assert tuning.loc[tuning["chosen"], "lr"].tolist() == [best]
    runs = pd.read_csv(out / "runs.csv")
    assert runs["phase"].eq("final").all() and runs["lr"].eq(best).all() and len(runs) == 2
    assert (out / "figures" / "lr_sensitivity.png").exists()
    assert not (out / "figures" / "effective_step.png").exists()  # probes were off


def test_diverged_runs_are_reported_in_the_summary(tmp_path, capsys):
    # lr = 1e10 overflows float32 within the epoch on every seed. (At 1e6 a seed can end the
    # epoch at a finite train loss of ~1e19, whether it overflows depends on the summation order
    # of the stacked kernels, and diverged means a non-finite loss.)
    out = tmp_path / "div"
    rc, stdout, _ = _run([*QUICK, "--defaults", "--optimizers", "sgd,adamw", "--hp", "sgd.lr=1e10",
                          "--seeds", "2", "--no-figures", "--out", str(out)], capsys)
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv").set_index("rule")
    assert summary.loc["sgd", "diverged"] == 2 and summary.loc["sgd", "note"] == "2/2 seeds diverged"
    assert summary.loc["adamw", "diverged"] == 0
    assert pd.read_csv(out / "runs.csv").query("rule == 'sgd'")["status"].eq("diverged").all()
    assert "note: sgd: 2/2 seeds diverged" in stdout


def test_an_output_folder_of_another_configuration_is_refused(tmp_path, capsys):
    out = tmp_path / "taken"
    ResultStore(out, CompareConfig(problem="digits-bnmlp", seeds=3, mode="defaults", epochs=1.0))
    before = (out / "manifest.json").read_text()
    rc, _, err = _run([*QUICK, "--defaults", "--seeds", "2", "--out", str(out)], capsys)
    assert rc == 2 and "different configuration" in err and "seeds: 3 there vs 2 now" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "manifest.json").read_text() == before and not list((out / "runs").iterdir())
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    rc, _, err = _run([*QUICK, "--defaults", "--out", str(stray)], capsys)
    assert rc == 2 and "not a comparison folder" in err


BAD = {
    "unknown problem": (["--problem", "digits-bnmpl"], "did you mean 'digits-bnmlp'"),
    "unknown optimizer": (["--optimizers", "sgd,adamq"], "unknown optimizer 'adamq'; did you mean 'adam'"),
    "empty grid": (["--lr-grid", ""], "grid is empty"),
    "zero lr": (["--lr-grid", "0,0.1"], "invalid learning rate(s) 0.0"),
    "negative lr": (["--lr-grid=-0.1,0.1"], "invalid learning rate(s) -0.1"),
    "negative log grid": (["--lr-grid=-1e-3:1:3"], "LO and HI must be > 0"),
    "garbage grid": (["--lr-grid", "fast"], "invalid --lr-grid 'fast'"),
    "no seeds": (["--seeds", "0"], "invalid seeds=0: must be an integer >= 1"),
    "seeds not a number": (["--seeds", "many"], "invalid int value: 'many'"),
    "missing data dir": (["--problem", "fmnist-bncnn", "--data-dir", "/no/such/dir"],
                         "data directory '/no/such/dir' does not exist"),
    "bad hyperparameter": (["--defaults", "--optimizers", "sgd", "--hp", "sgd.momentum=2"],
                           "invalid momentum=2"),
    "malformed --hp": (["--hp", "momentum=0.9"], "expected RULE.NAME=VALUE"),
    "lr in --hp when tuning": (["--optimizers", "sgd", "--hp", "sgd.lr=0.1"], "tuned on the grid"),
    "unknown problem in --problems": (["--problems", "digits-bnmlp,teacher-studnet"],
                                      "did you mean 'teacher-student'"),
    "a problem twice in --problems": (["--problems", "digits-bnmlp,digits-bnmlp"],
                                      "listed twice in --problems: digits-bnmlp"),
    "bad target_every": (["--target-every", "0"], "invalid target_every=0"),
    "zero epochs": (["--epochs", "0"], "invalid epochs=0"),
    "data dir for another problem": (["--data-dir", "/tmp"], "apply to fmnist-bncnn only"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    args, expected = BAD[case]
    out = tmp_path / "never"
    try:
        rc, _, err = _run(["--quiet", "--out", str(out), *args], capsys)
    except SystemExit as e:  # argparse's own errors
        rc, err = e.code, capsys.readouterr().err
    assert rc == 2
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written for bad input


def test_missing_fashion_mnist_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SANDBOX_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    rc, _, err = _run(["--problem", "fmnist-bncnn", "--quiet", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "Fashion-MNIST not found" in err and "apt-get install" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal when CUDA is absent")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path, capsys):
    rc, _, err = _run(["--device", "cuda", "--quiet", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "CUDA is not available" in err


def test_the_real_entry_point_prints_one_line_and_exits_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sandbox", "compare", "--seeds", "0", "--out",
                        str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "python -m sandbox compare: error: invalid seeds=0: must be an integer >= 1"


@pytest.mark.gpu
def test_compare_runs_on_cuda(tmp_path, capsys):
    rc, _, _ = _run(["--device", "cuda", "--defaults", "--optimizers", "adamp", "--seeds", "2",
                     "--epochs", "1", "--quiet", "--out", str(tmp_path / "gpu")], capsys)
    assert rc == 0
    assert json.loads((tmp_path / "gpu" / "manifest.json").read_text())["problem"]["size"] == "gpu"
