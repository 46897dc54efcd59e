"""``python -m sandbox problems``: the named problems with their budgets and measured spreads."""
from __future__ import annotations

import argparse
import sys

HELP = "list the named problems: data, budget, target, test-set resolution and measured spread"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measure", default=None, metavar="A,B",
                   help="measure the spread of these problems: compare --defaults with --seeds "
                        "paired seeds each, stored in sandbox/problems/measured_spreads.json")
    p.add_argument("--seeds", type=int, default=16, help="seeds of a --measure run (default 16)")
    p.add_argument("--out", default=None,
                   help="folder of the --measure runs (default results/problems)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def run(args) -> int:
    from sandbox.cli.main import UsageError

    if args.measure is not None:
        from sandbox.cli.compare_cmd import problem_list

        try:
            names = problem_list(args.measure)
        except ValueError as e:
            raise UsageError(str(e).replace("--problems", "--measure")) from None
        if args.seeds < 2:
            raise UsageError(f"invalid --seeds {args.seeds}: a spread needs at least 2 seeds")
        return _measure(args, names)
    print(format_problems())
    return 0


def format_problems() -> str:
    import math

    from sandbox.compare.config import DEFAULT_PROBLEM, DEFAULT_SEEDS
    from sandbox.compare.paired import detectable_difference
    from sandbox.problems import DataMissingError, get_problem, problem_summaries
    from sandbox.problems.spreads import load_spreads

    spreads = load_spreads()
    lines = []
    for name, summary in problem_summaries().items():
        default = "  [compare's default]" if name == DEFAULT_PROBLEM else ""
        lines.append(f"{name}{default}: {summary}")
        try:
            p = get_problem(name)
        except (DataMissingError, ValueError) as e:
            lines.append(f"    not available here: {str(e).splitlines()[0]}")
            continue
        n_tr, n_va, n_te = (len(s[1]) for s in (p.train, p.valid, p.test))
        steps = p.epochs * p.steps_per_epoch
        lines.append(f"    data: {n_tr} train / {n_va} validation / {n_te} test; one test example = "
                     f"{100 / n_te:.3g} pp")
        lines.append(f"    budget (size cpu): {p.epochs} epochs = {steps} steps of batch {p.batch_size}; "
                     f"target {p.target_accuracy:.0%} validation accuracy, checked every "
                     f"{p.target_every} step(s); seeds {'stacked' if p.stack_seeds else 'in a loop'} "
                     "by default")
        s = spreads.get(name)
        if not s:
            lines.append(f"    spread: not measured yet (python -m sandbox problems --measure {name})")
            continue
        rules = s["rules"]
        per_rule = ", ".join(f"{r} {v['test_acc_mean']:.2%} ± {v['test_acc_sd'] * 100:.2f}"
                             for r, v in rules.items() if v["test_acc_mean"] is not None
                             and v["test_acc_sd"] is not None)
        lines.append(f"    measured {s['date']} ({s['seeds']} paired seeds, defaults, "
                     f"{s['seconds']:.0f} s of training on {s['cpus']} shared CPUs, load average "
                     f"{s['load_average_1min']} when stored): final test accuracy mean ± SD over seeds (pp): {per_rule}")
        accs = [v["test_acc_mean"] for v in rules.values() if v["test_acc_mean"] is not None]
        close = [q for q in s["pairs"] if q["sd_diff"] is not None and abs(q["mean_diff"]) < 0.05]
        if accs:
            lines.append(f"    headroom: rules span {min(accs):.2%} .. {max(accs):.2%}")
        if close:
            sd = max(q["sd_diff"] for q in close)
            det = detectable_difference(sd, DEFAULT_SEEDS)
            lines.append(f"    SD of paired test-accuracy differences, pairs within 5 pp: "
                         f"{min(q['sd_diff'] for q in close) * 100:.2f} .. {sd * 100:.2f} pp; "
                         f"detectable with {DEFAULT_SEEDS} seeds (80% power, α = 0.05): "
                         f"{det * 100:.2f} pp" + ("" if math.isfinite(det) else ""))
        lines.append(f"    command: {s['command']}")
    return "\n".join(lines)


def _measure(args, names) -> int:
    import time
    from pathlib import Path

    import torch

    from sandbox.cli.main import UsageError
    from sandbox.compare import CompareConfig, compare, open_comparison, validate
    from sandbox.problems import DataMissingError
    from sandbox.problems.spreads import record_from_compare, save_spread

    torch.set_num_threads(args.threads)
    root = Path(args.out or "results/problems")
    for name in names:
        cfg = CompareConfig(problem=name, seeds=args.seeds, mode="defaults")
        out = root / f"{name}-{args.seeds}seeds"
        try:
            validate(cfg)
            opened = open_comparison(cfg, out)
        except (ValueError, DataMissingError) as e:
            raise UsageError(f"{name}: {str(e).splitlines()[0]}") from None
        start = time.perf_counter()
        summary = compare(cfg, out, progress=False, figures=False, opened=opened)
        seconds = time.perf_counter() - start  # this call's; a resumed folder trains nothing
        command = (f"python -m sandbox problems --measure {name} --seeds {args.seeds}"
                   f" (= python -m sandbox compare --problem {name} --defaults --seeds {args.seeds})")
        path = save_spread(name, record_from_compare(out, summary, summary.attrs["pairs"], command))
        print(f"{name}: done in {seconds:.0f} s (runs already in {out} are reused); stored in "
              f"{path}", file=sys.stderr)
    print(format_problems())
    return 0
