"""Robustness of ``python -m sandbox compare``: the folder's lock (two processes never write one
--out; stale locks are taken over; the lock goes away however compare ends), Ctrl-C (one line,
exit 130, a clean resume), whole-file writes, and one grid spelled two ways."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sandbox.compare.lock as lock_module
import sandbox.compare.protocol as protocol
import sandbox.training as training
from sandbox.cli.main import main
from sandbox.compare import CompareConfig, ResultStore, compare, write_csv
from sandbox.compare.config import (DEFAULT_LR_GRID, LEGACY_DEFAULT_LR_GRID, parse_lr_grid,
                                    same_lr_grid)
from sandbox.compare.lock import LOCK_NAME, FolderBusy, FolderLock, pid_alive

ROOT = Path(__file__).resolve().parents[1]
# the smallest budget: digits-bnmlp, one rule, one seed, one step per run, no probes or figures
TINY = ["--problem", "digits-bnmlp", "--optimizers", "sgd", "--seeds", "1", "--epochs", "0.05",
        "--probe-every", "0", "--no-figures", "--quiet", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


class _NoSafetyNet:
    def __init__(self, *a):
        pass

    def detach(self):
        pass


@pytest.fixture(autouse=True)
def _explicit_release_only(monkeypatch):
    """A lock left held is also released when its store is garbage-collected; switch that safety
    net off, so that these tests see the releases compare makes itself."""
    monkeypatch.setattr(lock_module, "finalize", _NoSafetyNet)


def _run(args, capsys):
    rc = main(["compare", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def _lock_text(pid, host=None):
    return f"{pid} {host or socket.gethostname()}\n"


# --- the lock ------------------------------------------------------------------------------
@pytest.mark.parametrize("holder", ["this process", "a sleeping child", "another host"])
def test_a_folder_locked_by_a_live_process_is_refused(holder, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    child = None
    if holder == "a sleeping child":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        text = _lock_text(child.pid)
    else:
        text = _lock_text(os.getpid(), "elsewhere" if holder == "another host" else None)
    (out / LOCK_NAME).write_text(text)
    try:
        rc, _, err = _run([*TINY, "--lr-grid", "0.1", "--out", str(out)], capsys)
    finally:
        if child is not None:
            child.kill()
            child.wait()
    line = _one_line(err)
    assert rc == 2
    assert f"{out} is in use by another compare (pid {text.split()[0]}" in line, line
    assert ("on host elsewhere" in line) == (holder == "another host"), line
    assert (out / LOCK_NAME).read_text() == text  # the holder's lock is left alone
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written


def test_a_second_process_is_refused_while_the_first_runs(tmp_path, capsys, monkeypatch):
    out = tmp_path / "shared"
    seen = []
    real = training.train_seeds

    def train_and_try_a_second_compare(*a, **k):  # a real second process, mid-run
        if not seen:
            r = subprocess.run([sys.executable, "-m", "sandbox", "compare", *TINY, "--lr-grid", "0.1",
                                "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            seen.append(((out / LOCK_NAME).read_text(), r.returncode, r.stderr))
        return real(*a, **k)

    monkeypatch.setattr(protocol, "train_seeds", train_and_try_a_second_compare)
    rc, _, err = _run([*TINY, "--lr-grid", "0.1", "--out", str(out)], capsys)
    assert rc == 0, err
    lock, rc2, err2 = seen[0]
    assert lock == _lock_text(os.getpid())  # held by this process while it trained
    assert rc2 == 2 and f"in use by another compare (pid {os.getpid()})" in _one_line(err2)
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_a_stale_lock_is_taken_over_with_a_note(tmp_path, capsys):
    out = tmp_path / "stale"
    out.mkdir()
    pid = _dead_pid()
    (out / LOCK_NAME).write_text(_lock_text(pid))
    rc, _, err = _run([*TINY, "--lr-grid", "0.1", "--out", str(out)], capsys)
    assert rc == 0, err
    notes = [line for line in err.splitlines() if "taking over" in line]
    assert notes == [f"note: {out}: taking over the lock of pid {pid}, which is no longer running"]
    assert (out / "runs" / "final-sgd-lr0.1-seed0.json").exists()
    assert not (out / LOCK_NAME).exists()


def test_an_unreadable_lock_is_taken_over_once_it_is_old(tmp_path, capsys, monkeypatch):
    # a lock without a pid: its creator is writing it right now, or crashed doing so
    monkeypatch.setattr(lock_module, "_UNREADABLE_AFTER_S", 0.5)
    out = tmp_path / "garbled"
    out.mkdir()
    (out / LOCK_NAME).write_text("")
    start = time.time()
    os.utime(out / LOCK_NAME, (start, start))
    lock = FolderLock(out).acquire(note=print)
    assert time.time() - start >= 0.5  # waited for the creator first
    assert capsys.readouterr().out == f"note: {out}: taking over an unreadable lock file\n"
    assert (out / LOCK_NAME).read_text() == _lock_text(os.getpid())
    lock.release()
    assert not (out / LOCK_NAME).exists()
    lock.release()  # idempotent


def test_the_lock_is_released_after_a_refusal_and_an_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    ResultStore(out, CompareConfig(problem="digits-bnmlp", optimizers=("sgd",), seeds=1,
                                   lr_grid=(0.1,), epochs=0.05, probe_every=0))
    rc, _, err = _run([*TINY, "--lr-grid", "0.2", "--out", str(out)], capsys)  # another grid
    assert rc == 2 and "different configuration" in _one_line(err)
    assert not (out / LOCK_NAME).exists()

    held = []

    def crash(*a, **k):
        held.append((out / LOCK_NAME).exists())
        raise RuntimeError("boom")

    monkeypatch.setattr(protocol, "train_seeds", crash)
    with pytest.raises(RuntimeError, match="boom"):
        main(["compare", *TINY, "--lr-grid", "0.1", "--out", str(out)])
    assert held == [True] and not (out / LOCK_NAME).exists()


def test_a_lock_is_refused_in_process_too_and_the_library_releases_it(tmp_path):
    out = tmp_path / "lib"
    cfg = CompareConfig(problem="digits-bnmlp", optimizers=("sgd",), seeds=1, lr_grid=(0.1,),
                        epochs=0.05, probe_every=0)
    with ResultStore(out, cfg, lock=True):
        with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"):
            ResultStore(out, cfg, lock=True)
        assert (out / LOCK_NAME).exists()  # the refused store did not release the holder's lock
    assert not (out / LOCK_NAME).exists()
    protocol.run_compare(cfg, out, progress=False, log=lambda msg: None)  # opens, runs, releases
    assert not (out / LOCK_NAME).exists() and (out / "runs" / "final-sgd-lr0.1-seed0.json").exists()
    opened = protocol.open_comparison(cfg, out)
    assert opened[1].lock.held and (out / LOCK_NAME).exists()
    compare(cfg, out, progress=False, figures=False, log=lambda msg: None, opened=opened)
    assert not (out / LOCK_NAME).exists()  # compare released the lock it was given


# --- Ctrl-C --------------------------------------------------------------------------------
def test_ctrl_c_is_one_line_exit_130_and_the_rerun_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "int"
    args = [*TINY, "--lr-grid", "0.01,0.1", "--out", str(out)]
    real, calls = training.train_seeds, []

    def interrupted_on_the_second_run(p, rule, seeds, hp, **k):
        calls.append(hp["lr"])
        if len(calls) == 2:  # trains, files only the first evaluation, and is interrupted
            k["on_eval"](real(p, rule, seeds, hp, **{**k, "on_eval": None}).iloc[:1])
            raise KeyboardInterrupt
        return real(p, rule, seeds, hp, **k)

    monkeypatch.setattr(protocol, "train_seeds", interrupted_on_the_second_run)
    rc, _, err = _run(args, capsys)
    assert rc == 130
    assert _one_line(err) == (f"compare interrupted; finished runs are saved in {out}; "
                              "rerun the same command to resume")
    assert not (out / LOCK_NAME).exists()
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["tune-sgd-lr0.01-seed0.csv", "tune-sgd-lr0.01-seed0.json",
                    "tune-sgd-lr0.1-seed0.csv"]  # the interrupted run: a partial curve, no record

    calls.clear()
    monkeypatch.setattr(protocol, "train_seeds", lambda p, rule, seeds, hp, **k:
                        calls.append(hp["lr"]) or real(p, rule, seeds, hp, **k))
    rc, _, err = _run(args, capsys)
    assert rc == 0, err
    assert calls[0] == 0.1 and len(calls) == 2  # lr 0.01 was kept; 0.1 retrained, then the final
    assert json.loads((out / "runs" / "tune-sgd-lr0.1-seed0.json").read_text())["status"] == "finished"
    curve = pd.read_csv(out / "runs" / "tune-sgd-lr0.1-seed0.csv")
    assert curve["step"].tolist() == [0, 1]  # the partial rows were deleted, not appended to


def test_ctrl_c_between_opening_and_training_releases_the_lock(tmp_path, capsys, monkeypatch):
    import sandbox.compare

    out = tmp_path / "early"
    held = []

    def interrupted_at_once(cfg, out, **k):
        held.append((out / LOCK_NAME).exists())
        raise KeyboardInterrupt

    monkeypatch.setattr(sandbox.compare, "compare", interrupted_at_once)
    rc, _, err = _run([*TINY, "--lr-grid", "0.1", "--out", str(out)], capsys)
    assert rc == 130 and _one_line(err).startswith("compare interrupted; finished runs are saved")
    assert held == [True] and not (out / LOCK_NAME).exists()


def test_sigint_to_the_real_process_is_one_line_and_exit_130(tmp_path):
    out = tmp_path / "sig"
    # a shell may start background children with SIGINT ignored; put Python's handler back as
    # an interactive `python -m sandbox` has it, then run the same entry point
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from sandbox.cli.main import main; sys.exit(main(sys.argv[1:]))")
    long = [a if a != "0.05" else "500" for a in TINY]
    proc = subprocess.Popen([sys.executable, "-c", code, "compare", *long, "--lr-grid", "0.1",
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list((out / "runs").glob("*.csv")) and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()  # still training when interrupted
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert _one_line(err).startswith(f"compare interrupted; finished runs are saved in {out}")
    assert not (out / LOCK_NAME).exists()
    assert not list((out / "runs").glob("*.json"))  # the interrupted run left no record


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.csv"
    write_csv(pd.DataFrame({"a": [1, 2]}), path)
    before = path.read_text()

    def half_then_ctrl_c(self, tmp, **k):
        Path(tmp).write_text("a\n3\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        write_csv(pd.DataFrame({"a": [3, 4]}), path)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


# --- one grid, two spellings ---------------------------------------------------------------
def test_the_default_grid_given_explicitly_is_the_same_configuration(tmp_path, capsys, monkeypatch):
    assert parse_lr_grid("1e-4:1:9") == DEFAULT_LR_GRID
    out = tmp_path / "grid"
    rc, _, err = _run([*TINY, "--out", str(out)], capsys)  # the implicit default grid
    assert rc == 0, err
    manifest = (out / "manifest.json").read_text()
    monkeypatch.setattr(protocol, "train_seeds", lambda *a, **k: pytest.fail("should resume"))
    rc, _, err = _run([*TINY, "--lr-grid", "1e-4:1:9", "--out", str(out)], capsys)
    assert rc == 0, err
    assert (out / "manifest.json").read_text() == manifest


def test_a_folder_of_the_old_three_digit_default_grid_resumes_under_both_spellings(tmp_path):
    from sandbox.cli.compare_cmd import add_arguments, config_from_args
    import argparse

    out = tmp_path / "legacy"
    ResultStore(out, CompareConfig(problem="digits-bnmlp", optimizers=("sgd",), seeds=1,
                                   epochs=0.05, probe_every=0, lr_grid=LEGACY_DEFAULT_LR_GRID))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for spelling in ([], ["--lr-grid", "1e-4:1:9"]):
        cfg = config_from_args(parser.parse_args([*TINY, *spelling, "--out", str(out)]))
        assert cfg.lr_grid == DEFAULT_LR_GRID
        protocol.open_comparison(cfg, out)[1].close()
        assert cfg.lr_grid == LEGACY_DEFAULT_LR_GRID  # the folder's lrs, so its run ids match
    assert not (out / LOCK_NAME).exists()


GRIDS = {
    "another log grid": "1e-4:1:8",
    "one lr off in the 6th digit": ",".join(
        str(x if x != 0.316228 else 0.316229) for x in DEFAULT_LR_GRID),
    "the old three-digit values": ",".join(map(str, LEGACY_DEFAULT_LR_GRID)),
    "the grid reversed": ",".join(map(str, reversed(DEFAULT_LR_GRID))),
}


@pytest.mark.parametrize("case", sorted(GRIDS))
def test_a_different_grid_is_still_refused(case, tmp_path, capsys):
    out = tmp_path / "grid"
    ResultStore(out, CompareConfig(problem="digits-bnmlp", optimizers=("sgd",), seeds=1,
                                   epochs=0.05, probe_every=0))  # the default grid
    manifest = (out / "manifest.json").read_text()
    rc, _, err = _run([*TINY, "--lr-grid", GRIDS[case], "--out", str(out)], capsys)
    line = _one_line(err)
    assert rc == 2 and "different configuration (lr_grid:" in line, line
    assert (out / "manifest.json").read_text() == manifest and not (out / LOCK_NAME).exists()


def test_same_lr_grid_tolerance():
    grid = (1e-3, 0.0316228, 1.0)
    assert same_lr_grid(grid, tuple(x * (1 + 1e-12) for x in grid))
    assert not same_lr_grid(grid, tuple(x * (1 + 1e-7) for x in grid))
    assert not same_lr_grid(grid, grid[:2])
    assert not same_lr_grid(LEGACY_DEFAULT_LR_GRID, (0.1,))
    assert not same_lr_grid(["x"], grid[:1])


@pytest.mark.parametrize("leftover", [".manifest.json.partial-{pid}", f".{LOCK_NAME}.stale-{{pid}}"])
def test_a_folder_left_by_a_compare_killed_in_its_first_write_is_still_usable(leftover, tmp_path):
    """Killed while writing its manifest (or while setting a stale lock aside), a compare leaves a
    hidden temporary file only: the folder holds no result and is not someone else's."""
    out = tmp_path / "fresh"
    out.mkdir()
    (out / leftover.format(pid=_dead_pid())).write_text("{")
    with ResultStore(out, CompareConfig(problem="digits-bnmlp", seeds=2, mode="defaults", epochs=1.0)):
        pass
    assert (out / "manifest.json").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.csv").write_text("x\n")  # anything else still makes it not ours
    with pytest.raises(ValueError, match="not a comparison folder"):
        ResultStore(other, CompareConfig(problem="digits-bnmlp", seeds=2, mode="defaults", epochs=1.0))
