"""Resume support: a run's tidy table is saved under a key of everything that defines it.

``cached(folder, key, compute)`` returns the saved table when a run with the same key was
completed before (a rerun after a crash resumes where it stopped) and otherwise computes,
saves and returns it. The key is any JSON-able description (rule, hyperparameters, sizes, seed,
device, and a version tag that changes with the measuring code).
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Callable

import pandas as pd


def run_key(key: dict) -> str:
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cached(folder: Path, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_key(key)}.csv"
    if path.exists():
        return pd.read_csv(path)
    frame = compute()
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)  # atomic: a crash never leaves a half-written run behind
    return frame


def stable_seed(text: str) -> int:
    """A seed offset that depends on ``text`` alone (e.g. a job label), not on which other
    jobs run: ``--only`` filtering and resumed runs keep every job's random stream."""
    return zlib.crc32(text.encode()) % 1_000_003
