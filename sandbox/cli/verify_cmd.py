"""``python -m sandbox verify``: every theory claim × every applicable rule, predicted vs measured.

Prints the table (claim, rule, predicted, measured, error, tolerance, verdict), writes
``verify.csv``, one PNG per claim family and ``report.md`` under ``--out``. Exit status 1 when a
claim that should hold FAILs, 0 otherwise (REPORTED rows — open claims — never fail); 2 for bad
input. A rerun with the same options resumes (families already saved by the same code are
skipped; those saved by other code are rerun) unless ``--force``. See
:mod:`sandbox.verify.runner`.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

HELP = "check every theory claim against measurements on toy problems (table, CSV, figures, report)"
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="small sizes: every family in under a minute of CPU time")
    p.add_argument("--only", metavar="PATTERN",
                   help="run only the claims whose id matches this fnmatch pattern, e.g. "
                        "'identity.*' or 'invariance.rootfree_*'")
    p.add_argument("--out", metavar="DIR", type=Path, default=Path("results/verify"),
                   help="output folder (default results/verify)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    p.add_argument("--force", action="store_true",
                   help="recompute every family even if saved results match the options and code")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op CPU threads (default 1: the checks run many small tensor "
                        "operations, where thread hand-offs cost more than they save)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def validate_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N' that exists here, else UsageError."""
    import torch

    from sandbox.cli.main import UsageError

    if not DEVICE.match(device):
        raise UsageError(f"unknown --device {device!r}: expected cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device} asked for, but CUDA is not available here "
                             f"(torch {torch.__version__}); use --device cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA "
                             f"device(s) here (valid: 0..{torch.cuda.device_count() - 1})")
    return device


def run(args) -> int:
    """Run (or resume) the checks; Ctrl-C ends with one line and exit status 130: the families
    finished so far are saved under --out, and the same command resumes from them."""
    from sandbox.cli.main import UsageError, interrupted, writable_dir

    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.only is not None and not args.only.strip():
        raise UsageError("--only needs a non-empty pattern, e.g. 'identity.*'")
    if not DEVICE.match(args.device):
        raise UsageError(f"unknown --device {args.device!r}: expected cpu, cuda or cuda:N")
    out = writable_dir(args.out)
    try:
        return _run(args, out)
    except KeyboardInterrupt:
        return interrupted("verify", f"the families finished so far are saved in {out}",
                           getattr(args, "_argv", None))


def _run(args, out: Path) -> int:
    import torch

    from sandbox.verify.base import VerifyConfig
    from sandbox.verify.runner import run_verify

    device = validate_device(args.device)
    torch.set_num_threads(args.threads)
    cfg = VerifyConfig(quick=args.quick, device=device, out=out, seed=args.seed, only=args.only)
    _, status = run_verify(cfg, force=args.force, show_progress=not args.no_progress)
    return status
