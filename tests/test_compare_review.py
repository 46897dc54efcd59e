"""Review of ``python -m sandbox compare``: inputs that used to crash with a traceback, train runs
twice, or leave a half-claimed folder; and a grid whose every learning rate diverges."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sandbox.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--problem", "digits-bnmlp", "--quiet", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


def _run(args, capsys):
    try:
        rc = main(["compare", *args])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_exit_2(rc, err, expected):
    assert rc == 2, err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1, err


BAD = {
    # each used to crash (traceback, exit 1) or run wrongly
    "infinite epochs": (["--epochs", "inf"], "invalid epochs=inf"),
    "lr listed twice": (["--optimizers", "sgd", "--lr-grid", "0.1,0.1"], "listed twice in the grid: 0.1"),
    "lrs equal in their run id": (["--optimizers", "sgd", "--lr-grid", "0.1,0.10000001"],
                                  "listed twice in the grid"),
    "log grid of one value": (["--optimizers", "sgd", "--lr-grid", "0.1:0.1:3"], "listed twice"),
    "log grid to inf": (["--lr-grid", "1e-3:inf:3"], "LO and HI must be > 0 and finite"),
    "log grid with a fractional N": (["--lr-grid", "1e-3:1:2.5"], "invalid --lr-grid '1e-3:1:2.5'"),
    "malformed cuda device": (["--device", "cuda:x"], "invalid device='cuda:x'"),
    "string hyperparameter": (["--defaults", "--optimizers", "sgd", "--hp", "sgd.lr='0.1'"],
                              "invalid --hp sgd.lr='0.1'"),
    "string in a tuple": (["--defaults", "--optimizers", "adamw", "--hp", "adamw.betas=(0.9,'x')"],
                          "invalid --hp adamw.betas"),
    "infinite lr in --hp": (["--defaults", "--optimizers", "sgd", "--hp", "sgd.lr=1e400"],
                            "invalid --hp sgd.lr=inf"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    args, expected = BAD[case]
    out = tmp_path / "never"
    rc, _, err = _run([*QUICK, "--epochs", "1", "--out", str(out), *args], capsys)
    _one_line_exit_2(rc, err, expected)
    assert not out.exists()  # nothing claimed for bad input


def test_cuda_index_beyond_the_devices_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    rc, _, err = _run([*QUICK, "--device", "cuda:1", "--out", str(tmp_path / "o")], capsys)
    _one_line_exit_2(rc, err, "invalid device='cuda:1': this machine has 1 CUDA device(s)")


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_output_path_that_is_a_file_is_a_usage_error(where, tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("mine")
    out = f if where == "file" else f / "sub"
    rc, _, err = _run([*QUICK, "--defaults", "--out", str(out)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    # the store's message, or the CLI's folder check (sandbox.cli.main.writable_dir) where present
    assert re.search(r"cannot use|is a file, not a folder|cannot write to --out", err), err
    assert f.read_text() == "mine"


@pytest.mark.parametrize("body", ['{"config": ', "[]", '{"config": 3}'])
def test_an_unreadable_manifest_is_refused_in_one_line(body, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "manifest.json").write_text(body)
    rc, _, err = _run([*QUICK, "--defaults", "--out", str(out)], capsys)
    _one_line_exit_2(rc, err, "not a comparison manifest")
    assert (out / "manifest.json").read_text() == body


def test_problem_names_ignore_case_and_list_close_matches(tmp_path, capsys):
    rc, _, err = _run(["--problem", "DIGITS-BNMPL", "--quiet", "--out", str(tmp_path / "o")], capsys)
    _one_line_exit_2(rc, err, "did you mean 'digits-bnmlp'")


@pytest.mark.parametrize("figures", [True, False])
def test_a_grid_that_diverges_everywhere_is_summarised(figures, tmp_path, capsys):
    out = tmp_path / "div"
    rc, stdout, err = _run([*QUICK, "--epochs", "1", "--optimizers", "sgd,adamw", "--lr-grid", "1e10",
                            "--seeds", "2", "--out", str(out),
                            *([] if figures else ["--no-figures"])], capsys)
    assert rc == 0, err
    summary = pd.read_csv(out / "summary.csv").set_index("rule")
    for rule in ("sgd", "adamw"):
        assert summary.loc[rule, "note"] == "every lr of the grid diverged"
        assert f"note: {rule}: every lr of the grid diverged" in stdout
    assert pd.read_csv(out / "tuning.csv")["status"].eq("diverged").all()  # recorded, not dropped
    if figures:
        assert (out / "figures" / "lr_sensitivity.png").exists()
    # the same command again resumes and prints the same
    rc2, stdout2, _ = _run([*QUICK, "--epochs", "1", "--optimizers", "sgd,adamw", "--lr-grid", "1e10",
                            "--seeds", "2", "--out", str(out), "--no-figures"], capsys)
    assert rc2 == 0 and stdout2 == stdout


def test_the_real_entry_point_is_one_line_for_a_file_in_the_way(tmp_path):
    f = tmp_path / "afile"
    f.write_text("mine")
    r = subprocess.run([sys.executable, "-m", "sandbox", "compare", "--defaults", "--quiet",
                        "--out", str(f)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert len(re.findall(r"cannot use|is a file, not a folder", r.stderr)) == 1, r.stderr
