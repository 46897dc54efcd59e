"""Verdicts in the notebooks, in the same form as ``python -m sandbox verify`` writes them.

A notebook's verdict cell turns its measurements into rows with the columns of
:data:`sandbox.verify.base.ROW_COLUMNS` through :func:`sandbox.verify.rows.make_row` (so the
status — published / derived / open — and the PASS/FAIL/INCONCLUSIVE/REPORTED rule are the verify command's:
open claims are REPORTED whatever the numbers say), saves them, and shows them.
:func:`load_verify` reads the saved output of a ``verify`` run, when there is one, so that a
notebook can put the full-size check next to its own small experiment.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from sandbox.verify.base import ROW_COLUMNS
from sandbox.verify.rows import make_row

COLOURS = {"PASS": "#c8e6c9", "FAIL": "#ffcdd2", "INCONCLUSIVE": "#e0e0e0",
           "REPORTED": "#fff9c4"}
SHOWN = ("claim", "rule", "setting", "predicted", "measured", "measured_lo", "measured_hi",
         "error", "tolerance", "verdict", "status", "note")


def claim_row(claim: str, rule: str, setting: str, predicted, measured, tolerance: float,
              kind: str = "relative", status: str | None = None, note: str = "",
              interval: tuple[float, float] | None = None) -> dict:
    """One verdict row (family 'notebook'); ``status`` defaults to the theory catalogue's;
    ``interval``: the 95% interval of a noisy measurement (the verdict rule of
    :func:`sandbox.verify.base.verdict`: PASS/FAIL only when it is decisive)."""
    return make_row("notebook", claim, rule, setting, predicted, measured, tolerance, kind,
                    status=status, note=note, interval=interval)


def verdict_table(rows, path: str | Path | None = None) -> pd.DataFrame:
    """The rows as a table (columns of ``verify.csv``); written to ``path`` (CSV) when given."""
    table = pd.DataFrame(list(rows), columns=list(ROW_COLUMNS))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    return table


def verdict_counts(table: pd.DataFrame) -> str:
    """'n PASS, n FAIL, n INCONCLUSIVE, n REPORTED' (:func:`sandbox.verify.base.verdict_counts`)."""
    from sandbox.verify.base import verdict_counts as counts

    return counts(table["verdict"] if len(table) else [])


def styled(table: pd.DataFrame):
    """The table with its verdict cells coloured (a pandas Styler; displays in a notebook)."""
    cols = [c for c in SHOWN if c in table.columns]
    fmt = {c: "{:.4g}" for c in ("predicted", "measured", "measured_lo", "measured_hi", "error",
                                 "tolerance") if c in cols}
    return (table[cols].style.format(fmt, na_rep="—")
            .map(lambda v: f"background-color: {COLOURS.get(v, '')}", subset=["verdict"]))


def show_verdicts(table: pd.DataFrame) -> None:
    """Display the coloured table and print the counts (plain text outside a kernel)."""
    from .style import in_kernel

    if in_kernel():
        from IPython.display import display

        display(styled(table))
    else:
        print(table[[c for c in SHOWN if c in table.columns]].to_string())
    print(verdict_counts(table))


def load_verify(out: str | Path | None = None, pattern: str | None = None) -> pd.DataFrame | None:
    """The rows of a saved ``verify`` run (``out/verify.csv``; default the project's
    ``results/verify``) whose claim matches the fnmatch ``pattern``; None (with a line saying how
    to make it) when there is no such run."""
    import fnmatch

    from .sizes import project_path

    out = project_path("results", "verify") if out is None else Path(out)
    path = Path(out) / "verify.csv"
    if not path.is_file():
        print(f"no saved verify run at {path}: `python -m sandbox verify --quick --out {out}` "
              "makes one")
        return None
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    if pattern is not None:
        table = table[[fnmatch.fnmatchcase(str(c), pattern) for c in table["claim"]]]
    return table.reset_index(drop=True)


def t_band(values) -> tuple[float, float]:
    """(low, high) of the two-sided 95% Student-t interval of the mean of the finite values,
    x̄ ± t_{0.975, n−1} s/√n (:func:`sandbox.compare.t_interval`); (x̄, x̄) for one value — a
    seaborn ``errorbar`` callable matching the tables of ``compare``."""
    from sandbox.compare import t_interval

    m, h = t_interval(values)
    return (m, m) if h != h else (m - h, m + h)  # h is NaN for a single value


def show_saved_verify(pattern: str, figures=(), out: str | Path | None = None) -> pd.DataFrame | None:
    """Show the saved ``verify`` rows whose claim matches ``pattern`` and the family figures
    ``figures`` (paths relative to the verify folder, e.g. ``"asymptotes/asymptotes_delta.png"``;
    glob patterns allowed). Prints how to make the run when there is none; returns the rows."""
    from .sizes import project_path
    from .style import show_png

    out = project_path("results", "verify") if out is None else Path(out)
    rows = load_verify(out, pattern)
    if rows is None:
        return None
    if rows.empty:
        print(f"the saved verify run at {out} has no claim matching {pattern!r}")
        return rows
    show_verdicts(rows)
    for rel in figures:
        found = sorted(out.glob(rel)) if any(ch in rel for ch in "*?[") else [out / rel]
        for path in found:
            show_png(path)
    return rows
