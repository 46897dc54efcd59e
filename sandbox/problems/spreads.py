"""Measured spreads of the named problems: what ``python -m sandbox problems`` shows.

A spread is measured, never assumed: ``python -m sandbox problems --measure NAME --seeds K`` runs
``compare --defaults`` with K paired seeds on the problem (the default rules and budget) and
stores, with the date, the command, the training seconds of its runs, the machine's load
average when it was stored (a shared machine: the seconds depend on it) and the rules' lrs, per rule the mean and
SD over seeds of the final test accuracy and its time to target, and per pair of rules the mean
and SD of the paired test-accuracy differences, in :data:`SPREADS_FILE` (committed, so that the
listing needs no training). Nothing here is typed in by hand.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

SPREADS_FILE = Path(__file__).with_name("measured_spreads.json")


def load_spreads(path: Path | None = None) -> dict:
    path = Path(path or SPREADS_FILE)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def training_seconds(out: Path) -> float:
    """Seconds the folder's runs trained (each group's wall time once; a resumed folder still
    gives the time its runs took, not the resume's)."""
    seen = {}
    for p in Path(out, "runs").glob("*.json"):
        r = json.loads(p.read_text())
        seen[(r["phase"], r["rule"], r["lr"], r.get("engine"), r["wall_s"])] = float(r["wall_s"])
    return sum(seen.values())


def record_from_compare(out: Path, summary, pairs, command: str) -> dict:
    """The stored form of one measurement (a ``compare`` folder's summary and pairs)."""
    import math

    def num(v):
        v = float(v)
        return v if math.isfinite(v) else None

    acc = pairs[pairs["metric"] == "test_acc"] if len(pairs) else pairs
    return {
        "date": time.strftime("%Y-%m-%d"), "command": command,
        "seconds": round(training_seconds(out), 1),
        "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "machine": platform.machine(), "folder": str(out),
        "seeds": int(summary["seeds"].max()),
        "rules": {r["rule"]: {"lr": num(r["lr"]), "lr_source": r.get("lr_source", ""),
                              "test_acc_mean": num(r["test_acc"]),
                              "test_acc_sd": num(r["test_acc_sd"]),
                              "steps_to_target": num(r["steps_to_target"]),
                              "reached_target": r["reached_target"]}
                  for _, r in summary.iterrows()},
        "pairs": [{"a": r["a"], "b": r["b"], "mean_diff": num(r["mean_diff"]),
                   "sd_diff": num(r["sd_diff"]), "n": int(r["n"])} for _, r in acc.iterrows()],
    }


def save_spread(problem: str, record: dict, path: Path | None = None) -> Path:
    path = Path(path or SPREADS_FILE)
    data = load_spreads(path)
    data[problem] = record
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
