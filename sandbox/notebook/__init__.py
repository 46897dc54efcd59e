"""Helpers the notebooks in ``notebooks/`` share (logic a cell would otherwise repeat).

- :mod:`.sizes` — full vs small size (``SANDBOX_NOTEBOOK_SMALL=1``), results folders, the
  project root, device;
- :mod:`.style` — one seaborn style, a fixed colour per rule, inline display that survives
  library imports selecting the 'Agg' backend;
- :mod:`.verdicts` — verdict tables (PASS/FAIL/REPORTED) in the form ``verify`` writes them;
- :mod:`.toy_runs` — the noise-driven toy through any rule with theory's ‖w_t‖, Δ_t next to it
  (notebooks 01, 02, 05); :mod:`.effective_step_panel` — notebook 01's ipywidgets panel (rule,
  lr, momentum, weight decay, projection → re-run, redraw predicted vs measured);
  :mod:`.schedule_panel` — notebook 06's panel (schedule kind, λ, β, rule → the toy under an lr
  schedule, predicted vs measured r_t, Δ_t, ‖g‖/‖w‖), :mod:`.schedule_views` — its toy and BN-net
  figures and verdict rows (the ``verify`` family's rule);
- :mod:`.equilibria` (02), :mod:`.escape_views` (04), :mod:`.rootfree_demos` and
  :mod:`.precision` (05) — each notebook's experiments and figures that are more than a call.

>>> from sandbox import notebook as nb
>>> nb.setup()                       # style, threads, prints the size in use   # doctest: +SKIP
>>> steps = nb.pick(full=20_000, small=500)                                     # doctest: +SKIP
"""
from __future__ import annotations

import os

from . import verdicts
from .effective_step_panel import EffectiveStepPanel
from .schedule_panel import SchedulePanel
from .sizes import (DEVICE_ENV, OUT_ENV, SMALL_ENV, device, is_small, pick, project_path,
                    project_root, results_dir, size_banner)
from .style import label_colors, rule_colors, show, show_png, use_style

THREADS_ENV = "SANDBOX_NOTEBOOK_THREADS"


def setup(threads: int | None = None, quiet: bool = False) -> dict:
    """First cell of every notebook: the style, torch's CPU threads, and a line saying the size.

    ``threads``: torch intra-op threads (default ``$SANDBOX_NOTEBOOK_THREADS`` or 1). The
    notebooks' tensors are small (thousands of elements), where one thread is fastest; on a shared
    machine extra threads can make an elementwise op a hundred times slower (measured: ``sqrt``
    of 8k floats 5 µs on one thread, 7 ms on two threads under load).
    Returns ``{"small": bool, "device": str, "threads": int}``.
    """
    import torch

    if threads is None:
        raw = os.environ.get(THREADS_ENV, "1")
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{THREADS_ENV}={raw!r}: expected an integer >= 1")
        threads = int(raw)
    if threads < 1:
        raise ValueError(f"threads={threads!r}: expected an integer >= 1")
    torch.set_num_threads(threads)
    use_style()
    info = {"small": is_small(), "device": device(), "threads": threads}
    if not quiet:
        print(size_banner(), f"device={info['device']}, torch threads={threads}")
    return info


__all__ = ["setup", "EffectiveStepPanel", "SchedulePanel", "verdicts", "pick", "is_small", "results_dir",
           "project_root", "project_path", "device", "size_banner", "use_style", "rule_colors",
           "label_colors", "show", "show_png", "SMALL_ENV", "OUT_ENV", "DEVICE_ENV",
           "THREADS_ENV"]
