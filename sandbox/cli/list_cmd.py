"""``python -m sandbox list``: the registry as a table."""
from __future__ import annotations

import argparse

HELP = "list every registered optimizer with its paper, defaults and stages"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--long", action="store_true", help="also print each default's provenance")


def registry_table():
    """The registry as a pandas DataFrame (one row per rule)."""
    import pandas as pd

    import sandbox

    rows = []
    for name in sandbox.available():
        spec = sandbox.info(name)
        defaults = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()
                             if k not in ("project_momentum",) or v)
        rows.append({
            "name": name, "k": spec.homogeneity, "momentum": spec.momentum_kind,
            "decay": spec.decay, "stages": " → ".join(s.name for s in spec.stages(_dummy(spec))),
            "paper": spec.paper, "defaults": defaults,
        })
    return pd.DataFrame(rows)


def _dummy(spec):
    """Values for required hyperparameters, only to show the chain's shape."""
    from sandbox.optim.hyper import REQUIRED

    return {k: 1 for k, v in spec.defaults.items() if v is REQUIRED}


def run(args) -> int:
    import sandbox

    table = registry_table()
    for _, row in table.iterrows():
        print(f"{row['name']:<11} k={row['k']:<3g} momentum={row['momentum']:<10} decay={row['decay']}")
        print(f"    paper:    {row['paper']}")
        print(f"    stages:   {row['stages']}")
        print(f"    defaults: {row['defaults']}")
        if args.long:
            for k, src in sandbox.info(row["name"]).provenance.items():
                print(f"      {k:<16} {src}")
    return 0
