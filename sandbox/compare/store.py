"""The results folder of a comparison: a manifest, one curve file per run, resumable.

Layout of ``out/``::

    manifest.json            the configuration (CompareConfig.identity()) and the problem's summary
    runs/<run_id>.csv        that run's curve, one row per evaluation, appended as produced
    runs/<run_id>.json       written when the run ends: status ('finished' or 'diverged'), the
                             hyperparameters with their provenance, the engine, the wall time
    probes/<run_id>.csv      per-layer probes of a final run (when recorded)
    summary.csv, tuning.csv, figures/*.png    derived from the above
    compare.lock             while a comparison writes the folder: its pid and host (lock.py)

A run is done exactly when its ``.json`` exists; a rerun of the same command skips done runs and
restarts unfinished ones from scratch (their partial curves are deleted first), so a crash loses
only the runs in flight. (A resumed group may train its remaining seeds on the other engine —
loop instead of stacked —, which agrees to round-off: float64 runs reproduce to ~1e-12, float32
runs to float32 round-off amplified by training.) A folder whose manifest holds a different configuration is refused
(:class:`ConfigMismatch`): results of two configurations are never mixed. Every file but the
curves is written whole (to a temporary name, then renamed), so an interrupted write leaves the
old file or none; a curve is appended as produced, and a partial one belongs to a run without its
``.json``, which a resume deletes and reruns.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from .config import CompareConfig, same_lr_grid
from .lock import LOCK_NAME, FolderLock


class ConfigMismatch(ValueError):
    """The output folder holds results of another configuration."""


@dataclass(frozen=True)
class RunKey:
    """One training run: ``phase`` ('tune', 'final' or 'defaults'), rule, learning rate, seed."""

    phase: str
    rule: str
    lr: float
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.phase}-{self.rule}-lr{self.lr:.6g}-seed{self.seed}"


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path``: readers
    and resumes see the old file or the whole new one, never a part. (``tmp`` has no file
    extension: a writer that picks its format by extension must be told the format.)"""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")  # matches no *.json, *.csv
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def _leftover_of_ours(name: str) -> bool:
    """The lock, or what a compare killed during its first writes leaves: a half-written file
    (``.<name>.partial-<pid>``, see :func:`write_atomic`) or a lock set aside during a takeover
    (``.compare.lock.stale-<pid>``). A folder holding only these is still a fresh one."""
    return name == LOCK_NAME or (name.startswith(".") and (".partial-" in name or ".stale-" in name))


class ResultStore:
    """Reads and writes one comparison's folder (see the module docstring).

    ``lock=True`` (as :func:`~sandbox.compare.open_comparison` does) takes the folder's lock
    file before reading or writing the manifest (:class:`~sandbox.compare.lock.FolderBusy` if a
    live process holds it); :meth:`close` releases it. A folder's grid that is the same grid as
    ``cfg.lr_grid`` (:func:`~sandbox.compare.config.same_lr_grid`) is accepted and its spelling
    adopted into ``cfg.lr_grid``, so that the runs there keep their ids."""

    def __init__(self, out: str | Path, cfg: CompareConfig, problem_summary: dict | None = None,
                 lock: bool = False):
        self.out, self.cfg = Path(out), cfg
        self.runs, self.probes = self.out / "runs", self.out / "probes"
        self.lock = FolderLock(self.out) if lock else None
        self._claim(problem_summary or {})

    def close(self) -> None:
        """Release the folder's lock (if this store holds it); idempotent."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _claim(self, problem_summary: dict) -> None:
        try:
            try:
                self._claim_folder(problem_summary)
            except BaseException:
                self.close()
                raise
        except OSError as e:  # a file in the way, no permission, ...: bad input, one line
            raise ValueError(f"cannot use {self.out} as the output folder: "
                             f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}") from None

    def _claim_folder(self, problem_summary: dict) -> None:
        manifest = self.out / "manifest.json"
        want = json.loads(json.dumps(_jsonable(self.cfg.identity())))
        if not manifest.exists() and self.out.exists() and not all(
                _leftover_of_ours(p.name) for p in self.out.iterdir()):
            raise ConfigMismatch(f"{self.out} is not empty and holds no manifest.json: it is not a "
                                 "comparison folder; pass another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        if self.lock is not None:
            self.lock.acquire()
        if manifest.exists():
            try:
                have = json.loads(manifest.read_text())["config"]
                if not isinstance(have, dict):
                    raise TypeError
            except (ValueError, TypeError, KeyError):
                raise ConfigMismatch(f"{manifest} is unreadable or not a comparison manifest; "
                                     "pass another --out") from None
            grid = have.get("lr_grid")
            if "lr_grid" in want and isinstance(grid, list) and same_lr_grid(grid, want["lr_grid"]):
                want["lr_grid"] = grid  # one grid spelled two ways: keep the folder's run ids
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            if diff:
                shown = "; ".join(f"{k}: {have.get(k)!r} there vs {want.get(k)!r} now" for k in diff[:3])
                raise ConfigMismatch(f"{self.out} holds results of a different configuration "
                                     f"({shown}); pass another --out, or delete that folder")
            if "lr_grid" in want:
                self.cfg.lr_grid = tuple(float(x) for x in want["lr_grid"])
        else:
            body = {"config": want, "problem": _jsonable(problem_summary)}
            write_atomic(manifest, lambda tmp: tmp.write_text(json.dumps(body, indent=2)))
        self.runs.mkdir(exist_ok=True)
        self.probes.mkdir(exist_ok=True)

    # --- runs ------------------------------------------------------------------------------
    def is_done(self, key: RunKey) -> bool:
        return (self.runs / f"{key.run_id}.json").exists()

    def pending(self, keys: Iterable[RunKey]) -> list[RunKey]:
        """The runs without a completion record; their partial files are removed."""
        todo = [k for k in keys if not self.is_done(k)]
        for k in todo:
            (self.runs / f"{k.run_id}.csv").unlink(missing_ok=True)
            (self.probes / f"{k.run_id}.csv").unlink(missing_ok=True)
        return todo

    def append_rows(self, key: RunKey, rows: pd.DataFrame) -> None:
        path = self.runs / f"{key.run_id}.csv"
        rows = rows.assign(phase=key.phase, rule=key.rule, lr=key.lr)
        rows.to_csv(path, mode="a", header=not path.exists(), index=False)

    def finish(self, key: RunKey, record: dict[str, Any]) -> None:
        body = json.dumps(_jsonable({"run_id": key.run_id, "phase": key.phase, "rule": key.rule,
                                     "lr": key.lr, "seed": key.seed, **record}), indent=2)
        write_atomic(self.runs / f"{key.run_id}.json", lambda tmp: tmp.write_text(body))

    def record(self, key: RunKey) -> dict:
        return json.loads((self.runs / f"{key.run_id}.json").read_text())

    def curves(self, keys: Iterable[RunKey]) -> pd.DataFrame:
        """The curves of the given (finished) runs, concatenated."""
        frames = [pd.read_csv(self.runs / f"{k.run_id}.csv") for k in keys
                  if (self.runs / f"{k.run_id}.csv").exists()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def probe_path(self, key: RunKey) -> Path:
        return self.probes / f"{key.run_id}.csv"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)
