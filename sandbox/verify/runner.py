"""The ``verify`` driver: every claim family × every applicable rule → table, CSV, figures, report.

Family modules are ``sandbox.verify.families.<name>`` for ``name`` in
:data:`~sandbox.verify.base.FAMILIES` (a missing module is skipped). Besides the interface of
:mod:`sandbox.verify.base` (``TITLE``, ``run(cfg)``, ``plot(results, cfg)``), a family MAY expose

- ``CLAIMS``: the claim ids it can produce — ``--only`` selects families by them (a family
  without ``CLAIMS`` is skipped under ``--only``) and rejects a pattern that matches no claim
  before anything runs;
- ``plan(cfg) -> list[(claim, rule[, weight])]``: its work units under ``cfg``, each with its
  relative cost (default 1);
- ``COST = {"quick": s, "full": s}``: its measured CPU seconds per mode. The progress bar's total
  is the sum of the families' costs and each unit advances it by its share
  (:func:`family_cost`), so the bar's estimate follows the work's cost, not its count;
- ``SIZE_LAWS``: the size laws (``StageTraits.size_law``) of unmodelled stages whose claims it
  checks — the report's "not covered" list names only rules with a stage of no checked law.

A family advances the shared bar by iterating its work through ``cfg.progress(items, desc=...)``
(see :func:`sandbox.verify.rows.progress`); for families that do not, the bar jumps by their
whole cost when they end.

Outputs under ``cfg.out``: ``verify.csv`` (all rows, rewritten after each family: a crash loses
nothing), ``verify_state.json`` (the options, the code fingerprint and the families done, each
with the fingerprint of the code that produced its rows), ``<family>/…`` (each family's raw
tables and PNG figures) and ``report.md`` (linking the figures, naming the code).

Resume: a rerun with the same options skips the families saved by the same code (see
:mod:`sandbox.verify.code_version`) unless ``force``. A family saved by other code — or by code
that recorded no fingerprint (older state files) — is rerun, its old rows dropped from
``verify.csv`` at once (one line on stderr says which): the table never mixes rows of two code
versions.
"""
from __future__ import annotations

import fnmatch
import importlib
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pandas as pd

from sandbox.cli.main import UsageError  # bad input: one line, exit status 2
from sandbox.plotting import styled

from . import code_version
from .base import FAMILIES, ROW_COLUMNS, VerifyConfig, verdict_counts
from .code_version import CodeFingerprint
from .report import format_table, write_report

STATE = "verify_state.json"
TABLE = "verify.csv"
DEFAULT_COST = 10.0  # CPU seconds assumed for a family that declares no COST


def load_families(names=FAMILIES) -> dict[str, ModuleType]:
    """Import ``sandbox.verify.families.<name>`` for each name; missing modules are skipped
    (an ImportError inside an existing module is NOT swallowed)."""
    out = {}
    for name in names:
        module_name = f"sandbox.verify.families.{name}"
        try:
            out[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
    return out


def select_families(families: dict[str, ModuleType], pattern: str | None,
                    warn=None) -> dict[str, ModuleType]:
    """The families ``pattern`` touches (by their declared ``CLAIMS``); UsageError when it
    matches no declared claim. Under a pattern, a family that declares no ``CLAIMS`` cannot be
    selected: it is skipped (``warn`` is told)."""
    if pattern is None:
        return dict(families)
    touched = {}
    for name, mod in families.items():
        claims = getattr(mod, "CLAIMS", None)
        if claims is None:
            if warn is not None:
                warn(f"verify: family {name!r} declares no CLAIMS, so --only cannot select it: "
                     f"skipped")
        elif any(fnmatch.fnmatchcase(c, pattern) for c in claims):
            touched[name] = mod
    if not touched:
        known = [c for m in families.values() for c in getattr(m, "CLAIMS", ())]
        shown = ", ".join(known[:8]) + (f", … ({len(known)} in all)" if len(known) > 8 else "")
        raise UsageError(f"--only {pattern!r} matches no claim id (fnmatch); claims are: {shown}")
    return touched


def check_output_dir(out: Path) -> Path:
    """Create ``out`` and prove it writable, or raise UsageError naming it
    (:func:`sandbox.cli.main.writable_dir`)."""
    from sandbox.cli.main import writable_dir

    return writable_dir(out)


def _options(cfg: VerifyConfig) -> dict:
    return {"quick": cfg.quick, "seed": cfg.seed, "only": cfg.only, "device": str(cfg.device)}


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(ROW_COLUMNS))


def _load_state(out: Path, cfg: VerifyConfig, force: bool,
                code: CodeFingerprint) -> tuple[list[str], pd.DataFrame, list[str]]:
    """(families done under the same options by the same ``code``, their saved rows, families
    saved under the same options by other code — or with no fingerprint — whose rows are
    dropped)."""
    state_path, table_path = out / STATE, out / TABLE
    if force or not state_path.exists() or not table_path.exists():
        return [], _empty(), []
    try:
        state = json.loads(state_path.read_text())
        table = pd.read_csv(table_path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError):
        return [], _empty(), []
    if not isinstance(state, dict) or state.get("options") != _options(cfg):
        return [], _empty(), []
    family_code = state.get("family_code")
    family_code = family_code if isinstance(family_code, dict) else {}
    saved = [str(f) for f in state.get("done", [])]
    done = [f for f in saved if family_code.get(f) == code.id]
    stale = [f for f in saved if f not in done]
    if table.empty or "family" not in table.columns:
        return done, _empty(), stale
    return done, table[table["family"].isin(done)].reset_index(drop=True), stale


def _save(out: Path, cfg: VerifyConfig, done: list[str], table: pd.DataFrame,
          code: CodeFingerprint) -> None:
    """Write ``verify.csv`` (``table``: rows of ``done`` only, all produced by ``code``), then
    ``verify_state.json``."""
    table.to_csv(out / TABLE, index=False)
    state = {"options": _options(cfg),
             "code": {"version": code.version, "source_sha256": code.source_sha256,
                      "id": code.id},
             "done": done,
             "family_code": {name: code.id for name in done}}
    (out / STATE).write_text(json.dumps(state, indent=1))


def _code_changed_message(stale: list[str], fams: dict, code: CodeFingerprint) -> str:
    """The stderr line naming the families whose saved rows came from other code."""
    rerun = [n for n in stale if n in fams]
    dropped = [n for n in stale if n not in fams]
    parts = []
    if rerun:
        parts.append(f"rerunning {', '.join(rerun)}")
    if dropped:
        parts.append(f"dropped the saved rows of {', '.join(dropped)}")
    return (f"verify: {'; '.join(parts)}: the code changed since their results were saved "
            f"(now {code.describe()})")


def family_cost(mod: ModuleType, cfg: VerifyConfig) -> tuple[float, list[float]]:
    """(estimated CPU seconds of the family under ``cfg``, the share of each planned work unit).

    ``COST`` (a family's measured CPU seconds per mode, on a 2-core machine) is scaled by the
    part of the family's plan that ``--only`` keeps; a unit's share is its weight (``plan``'s
    third entry, 1 by default) over the family's. The progress bar advances by these shares, so
    its estimate of the time left follows what the work costs, not how many units are left."""
    default = getattr(mod, "COST", {}).get("quick" if cfg.quick else "full", DEFAULT_COST)
    plan = getattr(mod, "plan", None)
    if plan is None:
        return float(default), []
    weights = [float(u[2]) if len(u) > 2 else 1.0 for u in plan(cfg)]
    if cfg.only is None:
        whole = sum(weights)
    else:
        from dataclasses import replace

        whole = sum(float(u[2]) if len(u) > 2 else 1.0 for u in plan(replace(cfg, only=None)))
    cost = float(default) * (sum(weights) / whole if whole else 0.0)
    total = sum(weights)
    return cost, [cost * w / total for w in weights] if total else []


def _progress_factory(bar, shares: dict):
    """``cfg.progress``: wraps a family's work items so that each advances the shared bar by its
    estimated cost (:func:`family_cost`); items beyond the plan share what is left equally."""
    def factory(items, desc=""):
        items = list(items)
        if desc:
            bar.set_description(desc)
        planned = shares.get("units", [])
        for i, item in enumerate(items):
            if isinstance(item, tuple) and len(item) >= 2:
                bar.set_postfix_str(f"{item[0]} | {item[1]}", refresh=False)
            yield item
            left = shares["cost"] - shares["done"]
            step = planned[i] if i < len(planned) else max(left, 0.0) / max(len(items) - i, 1)
            step = min(step, max(left, 0.0))
            shares["done"] += step
            bar.update(step)
        shares["units"] = planned[len(items):]
    return factory


def _uncovered() -> dict:
    """Rules with a stage that is neither modelled nor of a size law some family checks (each
    family names the laws of its rows in ``SIZE_LAWS``)."""
    from .applicability import uncovered_rules

    laws = {law for mod in load_families().values() for law in getattr(mod, "SIZE_LAWS", ())}
    return uncovered_rules(laws)


def _normalise(rows: pd.DataFrame, family: str, pattern: str | None) -> pd.DataFrame:
    if rows is None or len(rows) == 0:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise RuntimeError(f"family {family!r} returned rows without columns {missing}")
    rows = rows[list(ROW_COLUMNS)].copy()
    rows["family"] = rows["family"].fillna(family)
    if pattern is not None:
        rows = rows[[fnmatch.fnmatchcase(str(c), pattern) for c in rows["claim"]]]
    return rows


def run_verify(cfg: VerifyConfig, force: bool = False, show_progress: bool = True,
               families: dict[str, ModuleType] | None = None, stream=None) -> tuple[pd.DataFrame, int]:
    """Run (or resume) the families, write every output, print the table; return (table, exit
    status): 1 if any claim that should hold FAILs, else 0 (INCONCLUSIVE and REPORTED rows do
    not fail the run)."""
    from tqdm.auto import tqdm

    stream = stream or sys.stdout
    out = check_output_dir(cfg.out)
    fams = select_families(load_families() if families is None else families, cfg.only,
                           warn=lambda m: print(m, file=sys.stderr))
    code = code_version.code_fingerprint()
    done, table, stale = _load_state(out, cfg, force, code)
    if stale:  # drop the other code's rows from disk now: a crash must not leave them behind
        print(_code_changed_message(stale, fams, code), file=sys.stderr)
        _save(out, cfg, done, table, code)
    todo = [n for n in fams if n not in done]
    costs = {n: family_cost(fams[n], cfg) for n in todo}
    total = sum(c for c, _ in costs.values())
    start = time.perf_counter()
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    fmt = "{l_bar}{bar}| {percentage:3.0f}% of the estimated work [{elapsed}<{remaining}{postfix}]"
    with tqdm(total=round(total, 3) or None, file=sys.stderr, disable=not show_progress,
              dynamic_ncols=True, desc="verify", bar_format=fmt) as bar:
        for name in todo:
            cost, units = costs[name]
            shares = {"cost": cost, "done": 0.0, "units": units}
            cfg.progress = _progress_factory(bar, shares)
            t0, c0 = time.perf_counter(), time.process_time()
            rows = _normalise(fams[name].run(cfg), name, cfg.only)
            timings[name] = time.perf_counter() - t0
            cpu[name] = time.process_time() - c0
            bar.update(max(cost - shares["done"], 0.0))  # whatever the family did not report
            table = pd.concat([table, rows], ignore_index=True) if len(table) else rows
            done.append(name)
            _save(out, cfg, done, table, code)
    cfg.progress = None
    if cfg.only is not None and table.empty:
        raise UsageError(f"--only {cfg.only!r} matched no claim of the families that ran")
    figures, problems = {}, {}
    c0 = time.process_time()
    for name, mod in fams.items():
        part = table[table["family"] == name]
        if part.empty or not hasattr(mod, "plot"):
            continue
        try:
            plot = styled()(mod.plot)  # one style for every family's figures, scoped to the call
            figures[name] = [Path(p) for p in (plot(part.reset_index(drop=True), cfg) or [])]
        except Exception as e:  # a figure must not lose the results: report it instead
            problems[name] = f"{type(e).__name__}: {e}"
    cpu["figures"] = time.process_time() - c0
    titles = {n: getattr(m, "TITLE", n) for n, m in fams.items()}
    write_report(table, figures, cfg, titles, problems,
                 {"elapsed_s": time.perf_counter() - start, "timings": timings, "cpu": cpu,
                  "resumed": [n for n in fams if n not in todo],
                  "rerun_for_code": [n for n in stale if n in fams], "code": code.describe(),
                  "uncovered": _uncovered()})
    print(format_table(table), file=stream)
    fails = int((table["verdict"] == "FAIL").sum())
    print(f"\n{len(table)} checks: {verdict_counts(table['verdict'])}. Report: "
          f"{out / 'report.md'}", file=stream)
    return table, 1 if fails else 0
