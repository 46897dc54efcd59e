"""``python -m sandbox compare``: a fair, resumable comparison of rules on a named problem.

    python -m sandbox compare --problem digits-bnmlp --defaults
    python -m sandbox compare --problem mnist1d-bncnn --optimizers sgdp,adamp --seeds 5 \\
        --lr-grid 1e-3:1:7 --epochs 10 --out results/compare/m1d
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = ("compare rules on a problem (tune lr on a log grid, then N seeds; or --defaults), "
        "resumable, with a summary table and figures")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sandbox.compare.config import DEFAULT_LR_GRID_SPEC, DEFAULT_OPTIMIZERS

    p.add_argument("--problem", default="digits-bnmlp",
                   help="a named problem (default digits-bnmlp; see sandbox.problems)")
    p.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS),
                   help="comma-separated rule names (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="seeds of each reported run (default 3)")
    p.add_argument("--lr-grid", default=None,
                   help="tuning grid: 1e-3,1e-2,0.1 or LO:HI:N log-spaced (default "
                        f"{DEFAULT_LR_GRID_SPEC}; given so or left out, it is the same grid)")
    p.add_argument("--defaults", action="store_true",
                   help="no tuning: run each rule at its published defaults")
    p.add_argument("--epochs", type=float, default=None, help="budget (default: the problem's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda selects the GPU sizes)")
    p.add_argument("--size", choices=("cpu", "gpu"), default=None,
                   help="problem size (default: gpu on cuda, else cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--target", type=float, default=None,
                   help="test accuracy for 'steps to target' (default: the problem's)")
    p.add_argument("--hp", action="append", default=[], metavar="RULE.NAME=VALUE",
                   help="fix a hyperparameter of one rule, e.g. sgd.momentum=0.9 (repeatable)")
    p.add_argument("--out", default=None,
                   help="results folder (default results/compare/<problem>-<tune|defaults>)")
    p.add_argument("--data-dir", default=None,
                   help="folder of the Fashion-MNIST idx files (fmnist-bncnn; default "
                        "$SANDBOX_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist)")
    p.add_argument("--download", action="store_true",
                   help="fmnist-bncnn: download missing files from the canonical URL")
    p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations "
                   "(default: the problem's, one epoch; a quarter epoch for fmnist-bncnn)")
    p.add_argument("--probe-every", type=int, default=10,
                   help="record per-layer probes every n steps in reported runs (0 = off)")
    p.add_argument("--engine", choices=("auto", "stacked", "loop"), default="auto",
                   help="seeds as one stacked (vmapped) model or a loop of models; auto: stacked "
                        "where the problem runs faster so (the MLPs; the CNNs only on cuda)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1 on CPU: these nets' ops are too small for "
                        "intra-op threads, which stall badly when another process holds a core)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args):
    """A validated CompareConfig from the parsed arguments (ValueError on bad input)."""
    from sandbox.compare import CompareConfig, parse_hp, parse_lr_grid, validate
    from sandbox.compare.config import DEFAULT_LR_GRID

    args.problem = args.problem.strip().lower()  # as the optimizer names
    if args.defaults and args.lr_grid is not None:
        raise ValueError("--lr-grid and --defaults exclude each other: --defaults does not tune")
    options = {}
    if args.data_dir is not None or args.download:
        if args.problem != "fmnist-bncnn":
            raise ValueError(f"--data-dir/--download apply to fmnist-bncnn only, not {args.problem!r}")
        if args.data_dir is not None:
            if not Path(args.data_dir).is_dir() and not args.download:
                raise ValueError(f"data directory {args.data_dir!r} does not exist (install "
                                 "dataset-fashion-mnist, or add --download to fetch the files)")
            options["data_dir"] = args.data_dir
        options["download"] = bool(args.download)
    optimizers = tuple(o.strip().lower() for o in args.optimizers.split(",") if o.strip())
    cfg = CompareConfig(
        problem=args.problem, optimizers=optimizers, seeds=args.seeds,
        mode="defaults" if args.defaults else "tune",
        lr_grid=parse_lr_grid(args.lr_grid) if args.lr_grid is not None else DEFAULT_LR_GRID,
        epochs=args.epochs, device=args.device, size=args.size, dtype=args.dtype,
        target=args.target, hp=parse_hp(args.hp), engine=args.engine,
        eval_every=args.eval_every, probe_every=args.probe_every, problem_options=options)
    return validate(cfg)


def run(args) -> int:
    """Run the comparison; Ctrl-C ends it with one line and exit status 130 (128 + SIGINT): the
    runs finished so far are on disk, the folder's lock is released, and the same command
    resumes."""
    state = {"out": None}
    try:
        return _run(args, state)
    except KeyboardInterrupt:
        out = state["out"]
        where = (f"finished runs are saved in {out}; rerun the same command to resume"
                 if out is not None else "nothing was run or written")
        print(f"compare interrupted; {where}", file=sys.stderr)
        return 130


def _run(args, state: dict) -> int:
    from sandbox.cli.main import UsageError
    from sandbox.compare import compare, format_summary, open_comparison
    from sandbox.problems import DataMissingError

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"invalid --threads {args.threads}: must be >= 1")
    threads = args.threads or (1 if args.device.startswith("cpu") else None)
    if threads:
        # Measured on a 2-core machine shared with other jobs: one BatchNorm of the default
        # problem took 20 µs with 1 thread and 5-10 ms with 2 (OpenMP waiting for a busy core);
        # `compare --defaults` on digits-bnmlp ran in ~70 s with 1 thread, >10 min with 2.
        import torch

        torch.set_num_threads(threads)
    try:  # bad input fails here, before any training; errors after this point are not usage errors
        cfg = config_from_args(args)
        out = Path(args.out or f"results/compare/{cfg.problem}-{cfg.mode}")
        opened = open_comparison(cfg, out)
        state["out"] = out
    except (ValueError, DataMissingError) as e:
        raise UsageError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    try:
        summary = compare(cfg, out, progress=not args.quiet, figures=not args.no_figures,
                          opened=opened)
    finally:  # compare releases the folder's lock itself; this covers a Ctrl-C before it starts
        opened[1].close()
    print(format_summary(summary))
    for _, row in summary.iterrows():
        if isinstance(row.get("note"), str) and row["note"]:
            print(f"note: {row['rule']}: {row['note']}")
    print(f"results: {out}/summary.csv, runs/, figures/", file=sys.stderr)
    return 0
