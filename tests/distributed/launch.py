"""Spawn a gloo job of ``world`` processes running :mod:`worker` and collect every rank's results.

Each rank is a subprocess (``python worker.py``) on a free port of 127.0.0.1 with its own stderr
file. The job has a deadline: a rank that exits non-zero fails the job with ITS traceback (the
others are killed at once), and a job that runs past the deadline is killed whole and fails with
every rank's last output; it never hangs.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class JobFailed(AssertionError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if "Warning" not in ln and "warnings.warn" not in ln]
    return "\n".join(lines)[-n:]


_CONSEQUENCES = ("Connection closed by peer", "Connection reset by peer", "remote worker crashing",
                 "Broken pipe")


def _collateral(text: str) -> bool:
    """A rank's error that only reports another rank's death (its peer closed the connection)."""
    return any(c in text for c in _CONSEQUENCES)


def run_job(world: int, spec: dict, timeout: float = 150.0) -> list[dict]:
    """Run the cases of ``spec`` on ``world`` ranks; returns each rank's result dict (rank order)."""
    with tempfile.TemporaryDirectory(prefix=f"dist{world}_") as tmp:
        tmp = Path(tmp)
        spec = {**spec, "world": world, "port": free_port(), "tmp": str(tmp)}
        (tmp / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
               "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        procs = []
        for rank in range(world):
            err = open(tmp / f"stderr{rank}.txt", "w")
            procs.append((subprocess.Popen(
                [sys.executable, str(HERE / "worker.py"), str(tmp / "spec.json"), str(rank)],
                cwd=str(ROOT), env=env, stdout=err, stderr=subprocess.STDOUT), err))
        deadline = time.monotonic() + timeout
        failed = None
        try:
            while True:
                codes = [p.poll() for p, _ in procs]
                bad = [r for r, c in enumerate(codes) if c not in (None, 0)]
                if bad:
                    # the others usually fail at once in a collective (their peer is gone): give
                    # them a moment, then blame the rank whose error is not such a consequence
                    settle = time.monotonic() + 3.0
                    while time.monotonic() < settle and any(p.poll() is None for p, _ in procs):
                        time.sleep(0.05)
                    bad = [r for r, (p, _) in enumerate(procs) if p.poll() not in (None, 0)]
                    primary = [r for r in bad if not _collateral(_tail(tmp / f"stderr{r}.txt"))]
                    failed = (primary or bad)[0]
                    others = [r for r in bad if r != failed]
                    break
                if all(c == 0 for c in codes):
                    break
                if time.monotonic() > deadline:
                    raise JobFailed(
                        f"the {world}-rank job ran past its {timeout:.0f} s deadline and was killed; "
                        f"last output of each rank:\n" + "\n".join(
                            f"--- rank {r} ---\n{_tail(tmp / f'stderr{r}.txt', 2500)}" for r in range(world)))
                time.sleep(0.05)
        finally:
            for p, f in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
                f.close()
        if failed is not None:
            also = f"\n(ranks {others} failed too, after it)" if others else ""
            raise JobFailed(f"rank {failed} of the {world}-rank job failed (exit "
                            f"{procs[failed][0].returncode}):\n{_tail(tmp / f'stderr{failed}.txt')}{also}")
        return [json.loads((tmp / f"result{r}.json").read_text()) for r in range(world)]
