"""Run sizes of the notebooks: full size for a researcher, small size for the test suite.

Every notebook reads its sizes through :func:`pick` (``pick(full=20_000, small=500)``), so the
same cells run at full size in JupyterLab and, with the environment variable
``SANDBOX_NOTEBOOK_SMALL=1``, at a size that executes in seconds (``tests/test_notebooks.py``).
Small runs are for checking that the cells work; their numbers are noisy and their verdicts are
not evidence (each notebook says so when it runs small).

Where results go: :func:`results_dir` (default ``results/notebooks/<name>`` under the project
root, or ``$SANDBOX_NOTEBOOK_OUT/<name>``); small runs go to a separate ``small/`` subfolder so
they never mix with, or get resumed from, full-size results. :func:`project_path` resolves paths
such as ``results/verify`` against the project root (the folder holding ``pyproject.toml``), so
a notebook finds the output of ``python -m sandbox verify`` whether JupyterLab was started in the
project root or in ``notebooks/``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

SMALL_ENV = "SANDBOX_NOTEBOOK_SMALL"
OUT_ENV = "SANDBOX_NOTEBOOK_OUT"
DEVICE_ENV = "SANDBOX_NOTEBOOK_DEVICE"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")

T = TypeVar("T")


def is_small() -> bool:
    """True when ``$SANDBOX_NOTEBOOK_SMALL`` is set to 1/true/yes/on (case-insensitive).

    Raises ValueError for any other non-empty value (a typo should not silently run full size).
    """
    raw = os.environ.get(SMALL_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{SMALL_ENV}={os.environ[SMALL_ENV]!r}: expected 1/true/yes/on for the small "
                     f"size or 0/false/no/off (or unset) for the full size")


def pick(full: T, small: T) -> T:
    """``small`` in small-size mode (:func:`is_small`), else ``full``."""
    return small if is_small() else full


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the current folder) that holds this
    project's ``pyproject.toml``; ``start`` itself when there is none (e.g. an installed copy)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        toml = folder / "pyproject.toml"
        if toml.is_file() and 'name = "optim-sandbox"' in toml.read_text(errors="ignore"):
            return folder
    return here


def project_path(*parts: str) -> Path:
    """``project_root() / parts`` — e.g. ``project_path("results", "verify")``."""
    return project_root().joinpath(*parts)


def results_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder where a notebook writes its tables and figures (created if missing).

    ``root`` (default ``$SANDBOX_NOTEBOOK_OUT`` or ``<project root>/results/notebooks``) /
    ``name``, with a ``small`` subfolder in small-size mode.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid results folder name {name!r}: one plain folder name, e.g. "
                         "'01_effective_step_size'")
    base = Path(root if root is not None else os.environ.get(OUT_ENV)
                or project_path("results", "notebooks"))
    path = base / name / ("small" if is_small() else "")
    path.mkdir(parents=True, exist_ok=True)
    return path


def device(default: str = "cpu") -> str:
    """Torch device for the notebooks: ``$SANDBOX_NOTEBOOK_DEVICE`` or ``default`` ('cpu').

    Only 'cpu', 'cuda' and 'cuda:N' are accepted; asking for CUDA where there is none is an error
    (a silent fall-back to the CPU would mislabel every timing)."""
    value = (os.environ.get(DEVICE_ENV) or default).strip()
    kind, _, index = value.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"device {value!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {value!r} was asked for, but torch sees no CUDA device")
    return value


def size_banner() -> str:
    """One line saying which size is running (printed by each notebook's first cell)."""
    if is_small():
        return (f"SMALL size ({SMALL_ENV}=1): the cells are being exercised; numbers are noisy "
                "and verdicts are not evidence.")
    return f"FULL size (set {SMALL_ENV}=1 for the seconds-long test size)."
