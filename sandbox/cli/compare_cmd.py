"""``python -m sandbox compare``: a fair, resumable comparison of rules on a named problem.

    python -m sandbox compare --defaults
    python -m sandbox compare --problem mnist1d-bncnn --optimizers sgdp,adamp --seeds 5 \\
        --lr-grid 1e-3:1:7 --epochs 10 --out results/compare/m1d
    python -m sandbox compare --defaults --problems teacher-student-large,digits-bnmlp,mnist1d-bncnn
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = ("compare rules on a problem (tune lr on a log grid, then N seeds; or --defaults), "
        "resumable, with a summary table and figures")
# sandbox.compare.config's defaults, named here so that parsing the arguments imports no torch
# (tests/test_cli_startup.py checks that they are the same).
DEFAULT_OPTIMIZERS = ("sgd", "sgdp", "adamw", "adamp", "adai")
DEFAULT_LR_GRID_SPEC = "1e-4:1:9"
DEFAULT_PROBLEM = "teacher-student-large"
DEFAULT_SEEDS = 39


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", default=DEFAULT_PROBLEM,
                   help=f"a named problem (default {DEFAULT_PROBLEM}; list: python -m sandbox "
                        "problems)")
    p.add_argument("--problems", default=None, metavar="A,B,C",
                   help="several problems in one run: each compared into OUT/<problem>, then "
                        "time to target and performance profiles over them (Dolan & More)")
    p.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS),
                   help="comma-separated rule names (default %(default)s)")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"seeds of each reported run, paired across rules (default {DEFAULT_SEEDS}: "
                        "the number that detects 0.5 pp on the default problem, see README)")
    p.add_argument("--lr-grid", default=None,
                   help="tuning grid: 1e-3,1e-2,0.1 or LO:HI:N log-spaced (default "
                        f"{DEFAULT_LR_GRID_SPEC}; given so or left out, it is the same grid); "
                        "with --defaults, the grid of the rules without a published lr")
    p.add_argument("--defaults", action="store_true",
                   help="no tuning: each rule at its published defaults; a rule with no "
                        "published lr (sgdp, adai) gets it by the printed tuning rule (the grid, "
                        "seed 0, best validation accuracy) unless --hp RULE.lr=... fixes it")
    p.add_argument("--epochs", type=float, default=None, help="budget (default: the problem's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda selects the GPU sizes)")
    p.add_argument("--size", choices=("cpu", "gpu"), default=None,
                   help="problem size (default: gpu on cuda, else cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--target", type=float, default=None,
                   help="validation accuracy for time to target (default: the problem's)")
    p.add_argument("--target-every", type=int, default=None,
                   help="steps between the checks of time to target (default: every step, or "
                        "every few where a check costs more than half a step; stacked seeds)")
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
        eval_every=args.eval_every, probe_every=args.probe_every, problem_options=options,
        target_every=args.target_every)
    return validate(cfg)


def problem_list(text: str) -> list[str]:
    """The names of ``--problems`` (ValueError naming an unknown one with its close matches)."""
    from sandbox.problems import check_problem_name

    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--problems is empty: give comma-separated problem names")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"problem(s) listed twice in --problems: {', '.join(twice)}")
    for name in names:
        try:
            check_problem_name(name)
        except ValueError as e:
            raise ValueError(f"--problems: {e}") from None
    return names


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
    from sandbox.cli.main import UsageError, writable_dir
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
        names = problem_list(args.problems) if args.problems is not None else None
        if names is not None:
            return _run_problems(args, state, names)
        cfg = config_from_args(args)
        out = writable_dir(Path(args.out or f"results/compare/{cfg.problem}-{cfg.mode}"))
        opened = open_comparison(cfg, out)
        state["out"] = out
    except (ValueError, DataMissingError) as e:
        raise UsageError(_one_line(e)) from None
    try:
        summary = compare(cfg, out, progress=not args.quiet, figures=not args.no_figures,
                          opened=opened)
    finally:  # compare releases the folder's lock itself; this covers a Ctrl-C before it starts
        opened[1].close()
    _print_summary(summary, format_summary)
    print(f"results: {out}/summary.csv, pairs.csv, hyperparameters.csv, runs/, figures/",
          file=sys.stderr)
    return 0


def _one_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _print_summary(summary, format_summary) -> None:
    print(format_summary(summary))
    for _, row in summary.iterrows():
        if isinstance(row.get("note"), str) and row["note"]:
            print(f"note: {row['rule']}: {row['note']}")


def _run_problems(args, state: dict, names: list[str]) -> int:
    """``--problems a,b,c``: one comparison per problem into OUT/<problem> (each resumable), then
    time to target and the performance profiles over them (OUT/profile.csv, OUT/figures/)."""
    from sandbox.cli.main import UsageError, writable_dir
    from sandbox.compare import compare, format_summary, open_comparison, write_csv
    from sandbox.compare.profile import format_profile, profile_table
    from sandbox.problems import DataMissingError

    if args.target is not None:
        raise UsageError("--target applies to one problem; with --problems each problem's own "
                         "target is used (python -m sandbox problems lists them)")
    root = writable_dir(Path(args.out or f"results/compare/profile-{'defaults' if args.defaults else 'tune'}"))
    configs = []
    try:
        for name in names:  # every problem checked (data present, names valid) before training
            args.problem = name
            cfg = config_from_args(args)
            configs.append(cfg)
    except (ValueError, DataMissingError) as e:
        raise UsageError(f"{args.problem}: {_one_line(e)}") from None
    summaries = {}
    for cfg in configs:
        out = root / cfg.problem
        try:
            opened = open_comparison(cfg, out)
        except (ValueError, DataMissingError) as e:
            raise UsageError(f"{cfg.problem}: {_one_line(e)}") from None
        state["out"] = root
        try:
            summary = compare(cfg, out, progress=not args.quiet, figures=not args.no_figures,
                              opened=opened)
        finally:
            opened[1].close()
        print(f"== {cfg.problem} ({out})")
        _print_summary(summary, format_summary)
        print()
        summaries[cfg.problem] = summary
    table = profile_table(summaries)
    write_csv(table, root / "profile.csv")
    print(format_profile(table))
    if not args.no_figures:
        from sandbox.compare.profile_figures import profile_figure

        profile_figure(table, root / "figures" / "performance_profile.png")
    print(f"results: {root}/profile.csv, figures/performance_profile.png, and one folder per "
          "problem", file=sys.stderr)
    return 0
