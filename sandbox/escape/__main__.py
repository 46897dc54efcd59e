"""``python -m sandbox.escape``: the full escape-time experiment (``--quick`` for the small one).

Writes ``escape_rates.csv`` (one row per rule × problem × k × B × lr), ``first_passage/`` (every
particle's first-passage step), ``escape_fits.csv``, ``escape_decisions.csv`` and the figures
under ``--out``; a rerun with the same settings resumes (finished runs are not repeated). Bad
input (an unwritable ``--out`` included) is one line and exit status 2; Ctrl-C is one line with
the command that resumes, and exit status 130. Parsing the arguments imports no torch.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m sandbox.escape", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the small version (verify --quick's)")
    p.add_argument("--out", default="results/escape", help="output folder (default results/escape)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--particles", type=int, help="particles per grid point (default 10000; quick 3000)")
    p.add_argument("--max-steps", type=int, help="step cap per run (default 4000; quick 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--noise", choices=("minimum", "local"), default="minimum",
                   help="escape-coordinate noise: H_a/B (default) or the local |H(x)|/B")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    for name in ("particles", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            print(f"python -m sandbox.escape: error: --{name.replace('_', '-')} must be >= 1, "
                  f"got {value}", file=sys.stderr)
            return 2
    from sandbox.cli.main import UsageError, writable_dir

    try:
        out = writable_dir(args.out)
    except UsageError as e:
        print(f"python -m sandbox.escape: error: {e}", file=sys.stderr)
        return 2
    try:
        return _run(args, out)
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # see sandbox.cli.main.interrupted
        line = shlex.join(["python", "-m", "sandbox.escape", *argv])
        print(f"escape interrupted; the finished runs are saved in {out}; rerun `{line}` to "
              f"resume", file=sys.stderr)
        return 130


def _run(args, out) -> int:
    from dataclasses import replace

    from .experiment import EscapeExperiment, run_experiment, summary

    exp = EscapeExperiment.quick() if args.quick else EscapeExperiment()
    over = {"seed": args.seed, "noise": args.noise}
    if args.particles is not None:
        over["particles"] = args.particles
    if args.max_steps is not None:
        over["max_steps"] = args.max_steps
        over["burn_in"] = args.max_steps // 5
    exp = replace(exp, **over)
    progress = None
    if not args.no_progress:
        from tqdm.auto import tqdm as progress
    start = time.perf_counter()
    tables = run_experiment(exp, out, device=args.device, progress=progress, threads=args.threads)
    from .plots import plot_escape

    figures = plot_escape(tables["rates"], out / "figures")
    print(summary(tables["decisions"]))
    print(f"\n{len(tables['rates'])} rate rows, {len(figures)} figures in {out} "
          f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
