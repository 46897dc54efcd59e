"""The configuration of a comparison, checked before anything runs.

Every error is a ``ValueError`` with a one-line message naming the bad value and what is allowed
(the CLI turns it into ``error: ...`` and exit status 2).
"""
from __future__ import annotations

import ast
import math
import numbers
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

import sandbox
from sandbox.optim.hyper import close_matches

from ..problems import check_problem_name

MODES = ("tune", "defaults")
ENGINES = ("auto", "stacked", "loop")
DEFAULT_OPTIMIZERS = ("sgd", "sgdp", "adamw", "adamp", "adai")
DEFAULT_PROBLEM = "teacher-student-large"
# The default number of seeds: the rule of docs (README, compare section) applied to the pilot
# measurement of the SD of paired test-accuracy differences on DEFAULT_PROBLEM (see there).
DEFAULT_SEEDS = 39
FORMAT_VERSION = 2  # 2: defaults mode tunes the lrs without a published default on lr_grid
# (format 1 ran them at the problem's fallback lr); reported runs record time to target
LR_REL_TOL = 1e-9  # two grids whose lrs agree to this are one grid (float noise of their spelling)


def log_grid(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced values from ``lo`` to ``hi``, each rounded to 6 significant digits (the
    precision of run ids): the one form of a LO:HI:N grid, whether given or the default."""
    return tuple(float(f"{x:.6g}") for x in np.geomspace(lo, hi, n))


# DeepOBS-style log grid (Schneider, Balles & Hennig, ICLR 2019, tune the learning rate on a
# log grid): half decades from 1e-4 to 1, wide enough for Adam-scale and SGD-scale rules alike.
# The same floats as ``--lr-grid 1e-4:1:9``.
DEFAULT_LR_GRID_SPEC = "1e-4:1:9"
DEFAULT_LR_GRID = log_grid(1e-4, 1.0, 9)
# The default grid as folders made before it was built by log_grid hold it (3 digits: 0.000316
# where log_grid gives 0.000316228); such a folder still resumes under the default grid.
LEGACY_DEFAULT_LR_GRID = tuple(float(f"{x:.3g}") for x in np.logspace(-4, 0, 9))


def same_lr_grid(have: Sequence[float], want: Sequence[float]) -> bool:
    """Whether ``have`` (a folder's grid) and ``want`` are one grid: the same lrs in the same
    order up to :data:`LR_REL_TOL`, or the default grid in its old and its current form."""
    try:
        have, want = tuple(float(x) for x in have), tuple(float(x) for x in want)
    except (TypeError, ValueError):
        return False
    if len(have) == len(want) and all(math.isclose(a, b, rel_tol=LR_REL_TOL)
                                      for a, b in zip(have, want)):
        return True
    return want == DEFAULT_LR_GRID and have == LEGACY_DEFAULT_LR_GRID


@dataclass
class CompareConfig:
    """What a comparison runs. Two runs with equal :meth:`identity` may share an output folder.

    ``mode``: ``'tune'`` (tune lr on ``lr_grid`` with seed 0, keep the best by final validation
    accuracy, re-run it with ``seeds`` seeds) or ``'defaults'`` (each rule at its published
    defaults, ``seeds`` seeds; an lr without a published default is tuned on ``lr_grid`` by the
    rule of :mod:`.protocol`). Seed s is the same initialisation and data order for every rule
    (paired seeds). ``hp``: per-rule fixed hyperparameters ``{rule: {name: value}}``
    applied in both modes. ``epochs``: budget (None = the problem's default). ``target``:
    validation accuracy for "steps to target" (None = the problem's), checked every ``target_every`` steps
    of the reported runs (None = the problem's :attr:`~sandbox.problems.Problem.target_every`).
    ``probe_every``: record the
    scale-invariance probes every n steps in the final runs (0 = off). ``engine``: how the seeds
    of a group train — ``'stacked'`` (one vmapped model), ``'loop'`` (one model after the other)
    or ``'auto'`` (stacked where the problem says it is faster: ``Problem.stack_seeds``).
    """

    problem: str = DEFAULT_PROBLEM
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS
    seeds: int = DEFAULT_SEEDS
    mode: str = "tune"
    lr_grid: Sequence[float] = DEFAULT_LR_GRID
    epochs: float | None = None
    device: str = "cpu"
    size: str | None = None
    dtype: str = "float32"
    target: float | None = None
    hp: dict = field(default_factory=dict)
    engine: str = "auto"
    eval_every: int | None = None
    probe_every: int = 10
    problem_options: dict = field(default_factory=dict)
    target_every: int | None = None

    def __post_init__(self):
        self.optimizers = tuple(self.optimizers)
        self.lr_grid = tuple(float(x) for x in self.lr_grid)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the results (an output folder holds exactly one identity).
        ``engine`` is left out: the stacked and looped engines give the same runs."""
        d = asdict(self)
        d.pop("engine")
        d.pop("problem_options")  # e.g. a data folder: where the data is, not what it is
        d["optimizers"], d["lr_grid"] = list(self.optimizers), list(self.lr_grid)
        d.pop("target_every")  # the resolution of time to target, recorded per run
        d["format"] = FORMAT_VERSION
        return d


def validate(cfg: CompareConfig) -> CompareConfig:
    """Raise ValueError (one line) for any bad field; return ``cfg`` otherwise."""
    check_problem_name(cfg.problem)
    if not cfg.optimizers:
        raise ValueError("no optimizer given: pass --optimizers a,b,... "
                         f"(available: {', '.join(sandbox.available())})")
    for name in cfg.optimizers:
        if name not in sandbox.available():
            raise ValueError(f"unknown optimizer {name!r}; {close_matches(name, sandbox.available())}"
                             f"available: {', '.join(sandbox.available())}")
    dup = sorted({n for n in cfg.optimizers if list(cfg.optimizers).count(n) > 1})
    if dup:
        raise ValueError(f"optimizer(s) listed twice: {', '.join(dup)}")
    if isinstance(cfg.seeds, bool) or not isinstance(cfg.seeds, int) or cfg.seeds < 1:
        raise ValueError(f"invalid seeds={cfg.seeds!r}: must be an integer >= 1")
    if cfg.engine not in ENGINES:
        raise ValueError(f"invalid engine={cfg.engine!r}: must be one of {ENGINES}")
    if cfg.mode not in MODES:
        raise ValueError(f"invalid mode={cfg.mode!r}: must be one of {MODES}")
    if cfg.mode == "defaults":
        from .protocol import required_without_value

        for rule in cfg.optimizers:
            missing = required_without_value(rule, cfg.hp.get(rule, {}))
            if missing:
                raise ValueError(f"--defaults: {rule} has no published default for "
                                 f"{', '.join(missing)}; fix it with --hp "
                                 + " --hp ".join(f"{rule}.{m}=VALUE" for m in missing))
    # the grid: tuned in tune mode, and in defaults mode for the lrs without a published default
    if not cfg.lr_grid:
        raise ValueError("the learning-rate grid is empty: give at least one lr > 0")
    bad = [x for x in cfg.lr_grid if not (math.isfinite(x) and x > 0)]
    if bad:
        raise ValueError(f"invalid learning rate(s) {', '.join(map(repr, bad))} in the grid: "
                         "every lr must be a finite number > 0")
    ids = [f"{x:.6g}" for x in cfg.lr_grid]  # as in RunKey.run_id: equal ids are one run
    twice = sorted({i for i in ids if ids.count(i) > 1}, key=float)
    if twice:
        raise ValueError(f"learning rate(s) listed twice in the grid: {', '.join(twice)}")
    if cfg.epochs is not None and not (isinstance(cfg.epochs, (int, float))
                                       and math.isfinite(cfg.epochs) and cfg.epochs > 0):
        raise ValueError(f"invalid epochs={cfg.epochs!r}: must be a finite number > 0")
    if cfg.target is not None and not 0 < cfg.target <= 1:
        raise ValueError(f"invalid target={cfg.target!r}: a test accuracy in (0, 1]")
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"invalid dtype={cfg.dtype!r}: must be 'float32' or 'float64'")
    device = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", cfg.device)
    if not device:
        raise ValueError(f"invalid device={cfg.device!r}: must be 'cpu' or 'cuda' (or 'cuda:N')")
    if device[1] == "cuda" and device[2] is not None:
        import torch

        if torch.cuda.is_available() and int(device[2]) >= torch.cuda.device_count():
            raise ValueError(f"invalid device={cfg.device!r}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if cfg.eval_every is not None and cfg.eval_every < 1:
        raise ValueError(f"invalid eval_every={cfg.eval_every!r}: must be an integer >= 1")
    if cfg.target_every is not None and (isinstance(cfg.target_every, bool)
                                         or not isinstance(cfg.target_every, int)
                                         or cfg.target_every < 1):
        raise ValueError(f"invalid target_every={cfg.target_every!r}: must be an integer >= 1")
    if cfg.probe_every < 0:
        raise ValueError(f"invalid probe_every={cfg.probe_every!r}: must be >= 0 (0 = off)")
    for rule, values in cfg.hp.items():
        if rule not in cfg.optimizers:
            raise ValueError(f"--hp names {rule!r}, which is not among the optimizers "
                             f"({', '.join(cfg.optimizers)})")
        if cfg.mode == "tune" and "lr" in values:
            raise ValueError(f"--hp {rule}.lr: the learning rate is tuned on the grid; "
                             "use --lr-grid, or --defaults to fix it")
        for name, v in values.items():  # the rules' checks take "0.1" for a number
            if not _plain(v):
                raise ValueError(f"invalid --hp {rule}.{name}={v!r}: give a number, True/False "
                                 "or a tuple of numbers")
        if isinstance(values.get("lr"), float) and not math.isfinite(values["lr"]):
            raise ValueError(f"invalid --hp {rule}.lr={values['lr']!r}: must be a finite number")
        sandbox.info(rule).validate({k: v for k, v in values.items()})
    return cfg


def _plain(v: Any) -> bool:
    if isinstance(v, (tuple, list)):
        return all(_plain(x) for x in v)
    return isinstance(v, numbers.Real)  # bool, int, float, numpy scalars; not str


def parse_lr_grid(text: str) -> tuple[float, ...]:
    """``"1e-3,1e-2,0.1"`` or ``"LO:HI:N"`` (N log-spaced values from LO to HI)."""
    text = text.strip()
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            lo, hi, n = float(lo), float(hi), int(n)
            if n < 1:
                raise ValueError
            if not (0 < lo < math.inf and 0 < hi < math.inf):
                raise ValueError(f"invalid --lr-grid {text!r}: LO and HI must be > 0 and finite "
                                 "for a log grid")
            return log_grid(lo, hi, n)
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as e:
        if str(e).startswith("invalid --lr-grid"):
            raise
        raise ValueError(f"invalid --lr-grid {text!r}: give comma-separated numbers "
                         "(1e-3,1e-2) or LO:HI:N (N log-spaced values)") from None


def parse_hp(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["sgd.momentum=0.9", "adamw.weight_decay=5e-4"]`` → ``{"sgd": {"momentum": 0.9}, ...}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        rule, dot, name = key.partition(".")
        if not (sep and dot and rule and name):
            raise ValueError(f"invalid --hp {item!r}: expected RULE.NAME=VALUE, e.g. sgd.momentum=0.9")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"invalid --hp {item!r}: {value!r} is not a Python literal "
                             "(a number, True/False, or a tuple such as (0.9,0.999))") from None
        out.setdefault(rule.strip().lower(), {})[name.strip()] = parsed
    return out
