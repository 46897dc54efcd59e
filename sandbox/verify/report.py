"""Outputs of ``verify`` for people: the console table and ``report.md`` (linking one PNG per
claim family). The CSV is the runner's ``verify.csv`` (the table itself, tidy)."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pandas as pd

from .base import VerifyConfig, verdict_counts

CONSOLE_COLUMNS = ("claim", "rule", "predicted", "measured", "95% interval", "error", "tolerance",
                   "verdict")


def _num(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "—"
    if x == 0:
        return "0"
    return f"{x:.4g}"


def _interval(row) -> str:
    """'[lo, hi]' of a noisy measurement, '±∞' when it could not be estimated, '' when exact."""
    try:
        lo, hi = float(row.get("measured_lo")), float(row.get("measured_hi"))
    except (TypeError, ValueError):
        return ""
    if math.isnan(lo) or math.isnan(hi):
        return ""
    if math.isinf(lo) or math.isinf(hi):
        return "none (too few blocks)"
    return f"[{_num(lo)}, {_num(hi)}]"


def _error(row) -> str:
    kind = row.get("error_kind", "") or ""
    e = _num(row.get("error"))
    if e == "—":
        return e
    return {"relative": f"{e} rel", "absolute": f"{e} abs", "exponent": f"{e} exp"}.get(kind, e)


def format_table(table: pd.DataFrame) -> str:
    """The console table: claim, rule, predicted, measured, its 95% interval (noisy
    measurements), error (with its kind), tolerance, verdict — one line per row, fixed-width
    columns."""
    if table.empty:
        return "(no checks)"
    cells = [[str(r["claim"]), str(r["rule"]), _num(r["predicted"]), _num(r["measured"]),
              _interval(r), _error(r), _num(r["tolerance"]), str(r["verdict"])]
             for _, r in table.iterrows()]
    header = list(CONSOLE_COLUMNS)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(c) for c in cells])


def _md_escape(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: pd.DataFrame) -> str:
    cols = ["claim", "rule", "setting", "predicted", "measured", "95% interval", "error",
            "tolerance", "verdict", "status"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in rows.iterrows():
        vals = [_md_escape(r["claim"]), _md_escape(r["rule"]), _md_escape(r["setting"]),
                _num(r["predicted"]), _num(r["measured"]), _interval(r), _error(r),
                _num(r["tolerance"]),
                f"**{r['verdict']}**" if r["verdict"] == "FAIL" else str(r["verdict"]),
                _md_escape(r["status"])]
        out.append("| " + " | ".join(vals) + " |")
    return "\n".join(out)


def write_report(table: pd.DataFrame, figures: dict[str, list[Path]], cfg: VerifyConfig,
                 titles: dict[str, str], problems: dict[str, str] | None = None,
                 run_info: dict | None = None) -> Path:
    """Write ``cfg.out/report.md``: summary, then per family its figure(s), its rows, and the
    notes of rows that did not PASS. Figure links are relative to the report.

    ``run_info`` (all optional): ``code`` (the code fingerprint, described, e.g. "sandbox 0.1.0,
    source sha256 3f2a9c01be47"), ``elapsed_s``, ``timings`` (family → wall seconds), ``cpu``
    (family or 'figures' → CPU seconds of this process), ``resumed`` and ``rerun_for_code``
    (family names)."""
    out = Path(cfg.out)
    problems, run_info = problems or {}, run_info or {}
    lines = [
        "# `python -m sandbox verify` report", "",
        f"- written: {time.strftime('%Y-%m-%d %H:%M:%S')}; options: quick={cfg.quick}, "
        f"device={cfg.device}, seed={cfg.seed}, only={cfg.only!r}",
        f"- checks: {len(table)} — {verdict_counts(table['verdict'] if len(table) else [])}",
        "- verdicts: PASS / FAIL only when a noisy measurement's 95% interval lies wholly inside /"
        " outside the tolerance band (exact ones: the error against the tolerance); INCONCLUSIVE"
        " when the interval straddles the band's edge; REPORTED for open claims "
        "(`sandbox.verify.base.verdict`)",
        "- table: [verify.csv](verify.csv) (one row per claim × rule × setting; `error_kind` says "
        "how `error` compares `measured` with `predicted`)",
    ]
    if run_info.get("code"):
        lines.append(f"- code: {run_info['code']}")
    if run_info.get("uncovered"):
        lines.append("- registered rules the theory does not model (not checked): " + "; ".join(
            f"{rule} ({', '.join(stages)})" for rule, stages in run_info["uncovered"].items()))
    if run_info:
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in run_info.get("timings", {}).items())
        rerun = ", ".join(run_info.get("rerun_for_code", ()))
        lines.append(f"- wall time {run_info.get('elapsed_s', float('nan')):.1f} s"
                     + (f" ({timing})" if timing else "")
                     + (f"; resumed from saved results: {', '.join(run_info['resumed'])}"
                        if run_info.get("resumed") else "")
                     + (f"; rerun because the code changed: {rerun}" if rerun else ""))
        if run_info.get("cpu"):
            lines.append("- CPU time: " + ", ".join(f"{k} {v:.1f} s"
                                                    for k, v in run_info["cpu"].items()))
    lines.append("")
    fails = table[table["verdict"] == "FAIL"] if not table.empty else table
    if len(fails):
        lines += ["## Failures", "", _md_table(fails), ""]
    for family in dict.fromkeys(table["family"]) if not table.empty else []:
        rows = table[table["family"] == family]
        lines += [f"## {titles.get(family, family)}", ""]
        for p in figures.get(family, []):
            rel = os.path.relpath(Path(p).resolve(), out.resolve())
            lines += [f"![{family}]({rel})", ""]
        if family in problems:
            lines += [f"(figure failed: {_md_escape(problems[family])})", ""]
        lines += [_md_table(rows), ""]
        notes = rows[(rows["verdict"] != "PASS") & rows["note"].astype(str).str.len().gt(0)]
        if len(notes):
            lines += ["Notes:", ""]
            lines += [f"- {_md_escape(r['claim'])} / {_md_escape(r['rule'])} "
                      f"({_md_escape(r['setting'])}): {_md_escape(r['note'])}"
                      for _, r in notes.iterrows()]
            lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
