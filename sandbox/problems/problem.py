"""The :class:`Problem` record and the registry of named problems.

A problem is everything a training run needs besides the optimizer: a model factory, the data
(train / validation / test tensors, already on the device), the loss, the batch size and the
default budget. ``get_problem(name, device=..., size=...)`` builds one; ``size`` is ``"cpu"``
(small, runs anywhere in seconds to minutes) or ``"gpu"`` (wider nets, more data), chosen
automatically from the device when not given.

Every model keeps the weights that feed a normalisation free of a bias, so that those weights are
scale-invariant (f(c·w) = f(w), c > 0, up to the normaliser's eps; a bias in front of BatchNorm
is cancelled by the mean subtraction anyway). ``Problem.scale_invariant`` names them: the ground truth of scale
invariance from the architecture.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..optim.hyper import close_matches

SIZES = ("cpu", "gpu")
Split = tuple[Tensor, Tensor]  # (inputs, integer class labels)


@dataclass
class Problem:
    """A named training problem (classification with a mean cross-entropy loss).

    ``build(seed)`` makes the model (initialised from ``seed`` without touching the global RNG)
    on ``device`` in ``dtype``. ``train``/``valid``/``test`` are ``(x, y)`` tensors on the
    device; the validation split is held out of the training data (used to tune the learning
    rate, never trained on). ``epochs`` is the default budget; an epoch is
    ``len(train) // batch_size`` steps (the last partial batch is dropped, so every step sees a
    full batch, which BatchNorm and stacked seeds need). ``fallback_hp`` gives values for
    hyperparameters that a rule requires but has no published default for (SGD-scale ``lr``);
    ``target_accuracy`` is the test accuracy whose first crossing ``compare`` reports.
    ``stack_seeds``: whether seeds should train as one stacked model by default; False for the
    CNNs on CPU, where vmap turns each convolution into a grouped one that runs slower than a
    loop over the models (measured: ≈0.7–1.1× on mnist1d-bncnn); both engines give the same runs.
    """

    name: str
    description: str
    build_model: Callable[[], nn.Module]
    train: Split
    valid: Split
    test: Split
    batch_size: int
    epochs: int
    target_accuracy: float
    num_classes: int
    size: str = "cpu"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    fallback_hp: dict = field(default_factory=lambda: {"lr": 0.1})
    stack_seeds: bool = True  # whether K seeds train faster stacked (native or vmap) than in a loop here
    evals_per_epoch: int = 1  # default evaluation schedule of the training loops
    source: str = ""
    options: dict = field(default_factory=dict)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy over the batch."""
        return F.cross_entropy(logits, y)

    def replica_losses(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-replica mean cross-entropy of stacked logits (K, B, C) and labels (K, B): shape (K,).
        Equal to ``vmap(self.loss)`` but one flat kernel (vmap's batching of the loss is slower)."""
        K, B, C = logits.shape
        ce = F.cross_entropy(logits.reshape(K * B, C), y.reshape(K * B), reduction="none")
        return ce.reshape(K, B).mean(dim=1)

    def build(self, seed: int) -> nn.Module:
        """A freshly initialised model; the same ``seed`` gives the same weights everywhere."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = self.build_model()
        return model.to(device=self.device, dtype=self.dtype)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train[1]) // self.batch_size

    @property
    def eval_every(self) -> int:
        """Default steps between evaluations: ``steps_per_epoch / evals_per_epoch``."""
        return max(1, self.steps_per_epoch // self.evals_per_epoch)

    @property
    def target_every(self) -> int:
        """Steps between the validation checks of time to target when seeds train stacked: every
        step where one check (a forward pass over the validation split) costs at most half a
        training step (forward and backward of a batch, about three forward passes), otherwise
        the fewest steps that keep the checks' cost at about half the training's:
        ``ceil(n_valid / (1.5 · batch_size))``."""
        return max(1, math.ceil(len(self.valid[1]) / (1.5 * self.batch_size)))

    @property
    def scale_invariant(self) -> tuple[str, ...]:
        """Names of the parameters that feed a normalisation (scale-invariant by construction)."""
        return tuple(self.build_model().scale_invariant_names())

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (what a results manifest records)."""
        n = sum(p.numel() for p in self.build(0).parameters())
        return {"problem": self.name, "size": self.size, "dtype": str(self.dtype).replace("torch.", ""),
                "batch_size": self.batch_size, "epochs": self.epochs, "n_train": len(self.train[1]),
                "n_valid": len(self.valid[1]), "n_test": len(self.test[1]), "parameters": n,
                "options": dict(self.options)}


class DataMissingError(FileNotFoundError):
    """A problem's data files are not where they were looked for; the message says how to get them."""


_BUILDERS: dict[str, tuple[Callable[..., Problem], str]] = {}


def register_problem(name: str, summary: str):
    """Decorator: register ``builder(device, size, dtype, **options) -> Problem`` under ``name``."""
    def wrap(builder):
        if name in _BUILDERS:
            raise ValueError(f"problem {name!r} is already registered")
        _BUILDERS[name] = (builder, summary)
        return builder
    return wrap


def available_problems() -> list[str]:
    """Names of every registered problem."""
    _load_catalogue()
    return list(_BUILDERS)


def problem_summaries() -> dict[str, str]:
    _load_catalogue()
    return {k: v[1] for k, v in _BUILDERS.items()}


def check_problem_name(name: str) -> str:
    """``name`` if registered, else a ValueError listing close matches and every name."""
    _load_catalogue()
    if name not in _BUILDERS:
        raise ValueError(f"unknown problem {name!r}; {close_matches(str(name), _BUILDERS)}"
                         f"available: {', '.join(_BUILDERS)}")
    return name


def get_problem(name: str, device: str | torch.device = "cpu", size: str | None = None,
                dtype: torch.dtype = torch.float32, **options) -> Problem:
    """Build the named problem on ``device``.

    ``size``: ``"cpu"`` or ``"gpu"``; default ``"gpu"`` when ``device`` is CUDA, else ``"cpu"``.
    ``options`` are problem-specific (e.g. ``data_dir``/``download`` for ``fmnist-bncnn``,
    ``norm`` for ``teacher-student``). Unknown names raise ValueError with close matches; missing
    data raises :class:`DataMissingError`.
    """
    check_problem_name(name)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available here")
    size = size or ("gpu" if device.type == "cuda" else "cpu")
    if size not in SIZES:
        raise ValueError(f"invalid size={size!r}: must be one of {SIZES}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"invalid dtype={dtype!r}: must be torch.float32 or torch.float64")
    return _BUILDERS[name][0](device=device, size=size, dtype=dtype, **options)


def _load_catalogue() -> None:
    from . import catalogue  # noqa: F401  (registers the problems)


# --- helpers the problem modules share ------------------------------------------------------------
def cache_dir() -> Path:
    """Where parsed/generated data is cached: ``$SANDBOX_CACHE`` or ``~/.cache/optim-sandbox``."""
    d = Path(os.environ.get("SANDBOX_CACHE", Path.home() / ".cache" / "optim-sandbox"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def split_holdout(x: Tensor, y: Tensor, n_holdout: int, seed: int) -> tuple[Split, Split]:
    """A fixed random split of (x, y) into (rest, holdout) with ``n_holdout`` held-out rows."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    hold, rest = perm[:n_holdout], perm[n_holdout:]
    return (x[rest], y[rest]), (x[hold], y[hold])


def to_device(split: Split, device: torch.device, dtype: torch.dtype) -> Split:
    x, y = split
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=torch.long)
