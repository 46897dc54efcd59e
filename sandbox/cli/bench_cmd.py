"""``python -m sandbox bench``: optimizer step time, memory and bandwidth in one report.

    python -m sandbox bench [--quick] [--device cpu|cuda] [--out DIR] [--threads N]
                            [--repeats N] [--sets resnet,small] [--only steps,replicas] [--fresh]

Prints the table, writes the CSVs and ``bench.png`` under ``--out`` (see
:mod:`sandbox.benchmarks.report`). Timings on a shared machine are noisy: every figure is a
median over repeats with its interquartile range, and every comparison a ratio taken within one
repeat.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "benchmark optimizer steps (time, memory, bandwidth) against torch and the official packages"
# The report's sections and tensor sets, named here so that parsing the arguments imports no
# torch (tests/test_cli_startup.py checks them against sandbox.benchmarks).
SECTIONS = ("bandwidth", "steps", "replicas", "stacked_seeds", "probes")
SETS = ("resnet", "small")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small tensor sets, 3 repeats (smoke test)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--out", default="results/bench", help="output folder (default results/bench)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per contender (default 15; 3 with --quick)")
    p.add_argument("--sets", default=",".join(SETS), help=f"tensor sets, comma-separated from {SETS}")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated from {SECTIONS}")
    p.add_argument("--fresh", action="store_true", help="measure again even where CSVs exist in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's allocator defaults (by default the bench pins its mmap "
                        "threshold so that allocating implementations are timed reproducibly)")


def _choices(text: str, allowed: tuple, what: str) -> tuple[str, ...]:
    from sandbox.cli.main import UsageError

    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise UsageError(f"invalid {what} {','.join(bad) or text!r}: choose from {', '.join(allowed)}")
    return items


def run(args) -> int:
    """Measure and print the report; Ctrl-C ends with one line and exit status 130 (the sections
    finished so far are saved as CSVs under --out, and the same command reuses them)."""
    from sandbox.cli.main import UsageError, interrupted, writable_dir

    sets = _choices(args.sets, SETS, "--sets")
    sections = _choices(args.only, SECTIONS, "--only")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"invalid --threads {args.threads}: must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        raise UsageError(f"invalid --repeats {args.repeats}: must be >= 1")
    out = writable_dir(args.out)
    try:
        return _run(args, out, sets, sections)
    except KeyboardInterrupt:
        return interrupted("bench", f"the sections finished so far are saved in {out}",
                           getattr(args, "_argv", None))


def _run(args, out: Path, sets, sections) -> int:
    import torch

    from sandbox.benchmarks.report import BenchConfig, format_report, run_bench
    from sandbox.cli.main import UsageError

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UsageError(f"invalid --device {args.device!r}: use cpu or cuda[:N]") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"invalid --device {args.device!r}: use cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here (torch.cuda.is_available() "
                         "is False); nothing was measured")
    cfg = BenchConfig(quick=args.quick, device=args.device, out=out, repeats=args.repeats,
                      threads=args.threads, sets=sets, sections=sections, fresh=args.fresh,
                      progress=not args.no_progress, pin_malloc=not args.default_malloc)
    res = run_bench(cfg)
    print(format_report(res))
    print(f"\nresults: {cfg.out}/ (CSV per section; rerun with --fresh to measure again)")
    return 0
