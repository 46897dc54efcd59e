"""The figure style every sandbox plot uses, applied per call (never to the global state).

Library code must not call ``matplotlib.use`` or ``seaborn.set_theme``: in a Jupyter kernel that
switches inline figures off or restyles the user's own plots. Matplotlib already falls back to
the Agg backend on a machine without a display.

The conventions of every figure (checked by ``tests/test_figures.py`` with :func:`text_problems`):

- every text is at least :data:`MIN_FONT` points at the saved size; the layout is matplotlib's
  constrained layout, so no label overlaps another or leaves the figure;
- predictions are **lines** drawn *above* the measurements (:data:`PREDICTED`, z-order 3),
  measurements are **markers** (:data:`MEASURED`, z-order 2) with bands below them (:data:`BAND`);
- colours come from the Okabe–Ito palette (:data:`PALETTE`), which stays distinguishable under
  the common colour-vision deficiencies;
- a legend says which style is predicted and which measured (:func:`style_legend`).
"""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

MIN_FONT = 8.0  # points, at the saved size
# Okabe & Ito (2008), "Color universal design": blue, orange, bluish green, vermillion, reddish
# purple, sky blue, yellow, black.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
RC = {
    "font.size": 9.0, "axes.titlesize": 9.0, "axes.labelsize": 9.0, "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0, "legend.fontsize": 8.0, "legend.title_fontsize": 8.0,
    "figure.titlesize": 10.0, "figure.constrained_layout.use": True, "savefig.dpi": 110,
    "lines.linewidth": 1.4, "legend.framealpha": 0.85,
}
PREDICTED = {"ls": "-", "lw": 1.6, "zorder": 3}
MEASURED = {"ls": "none", "marker": "o", "ms": 3.5, "mew": 0.8, "alpha": 0.85, "zorder": 2}
BAND = {"alpha": 0.15, "lw": 0, "zorder": 1}
MAX_MARKERS = 40  # per measured series: a denser series hides the line above it


def predicted_kw(color, **extra) -> dict:
    """Keyword arguments of a predicted line: :data:`PREDICTED` with a white outline, so that the
    line stays visible above markers of its own colour."""
    import matplotlib.patheffects as pe

    return {**PREDICTED, "color": color,
            "path_effects": [pe.Stroke(linewidth=PREDICTED["lw"] + 2.0, foreground="white"),
                             pe.Normal()], **extra}


def thin(x, *ys, n: int = MAX_MARKERS, log: bool = True):
    """At most ``n`` of the points (x, ys...), evenly spaced in log x (or x): the markers of a
    measured series, whose full resolution stays in its band and in the saved table."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    if x.size <= n:
        return (x, *[np.asarray(y) for y in ys])
    pos = np.log(np.where(x > 0, x, np.nan)) if log and np.nanmin(x) > 0 else x
    targets = np.linspace(np.nanmin(pos), np.nanmax(pos), n)
    idx = np.unique(np.searchsorted(np.sort(pos), targets).clip(0, x.size - 1))
    order = np.argsort(pos)[idx]
    return (x[order], *[np.asarray(y)[order] for y in ys])


def rc() -> dict:
    """The matplotlib settings of :data:`RC` with the palette as the colour cycle."""
    from cycler import cycler

    return {**RC, "axes.prop_cycle": cycler(color=list(PALETTE))}


def colors(names) -> dict:
    """A palette colour per name, in order (cycling after eight)."""
    return dict(zip(dict.fromkeys(names), itertools.cycle(PALETTE)))


def styled(context: str = "notebook"):
    """Decorator: run a plotting function under seaborn's whitegrid style and :func:`rc` (the
    font sizes of :data:`RC` whatever the context; ``context`` is kept for its line widths)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            import matplotlib as mpl
            import seaborn as sns

            with sns.axes_style("whitegrid"), sns.plotting_context(context), mpl.rc_context(rc()):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def style_legend(ax, series=(), loc="best", title=None, entries=None, ncol: int = 1,
                 outside: bool = False) -> None:
    """A legend whose first entries say which style is predicted and which measured (grey
    samples; ``entries``: other (label, line style) pairs instead), followed by ``series``:
    (label, colour) pairs. ``outside`` puts it right of the axes (constrained layout makes room)."""
    from matplotlib.lines import Line2D

    if entries is None:
        entries = (("predicted (line)", PREDICTED), ("measured (markers)", MEASURED))
    handles = [Line2D([], [], **{"color": "0.25", **{k: v for k, v in style.items()
                                                     if k != "zorder"}}, label=label)
               for label, style in entries]
    handles += [Line2D([], [], color=c, lw=6, alpha=0.8, label=str(lab)) for lab, c in series]
    kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {"loc": loc}
    ax.legend(handles=handles, title=title, ncol=ncol, **kw)


def plain_log_ticks(ax, axis: str = "y") -> None:
    """Tick labels as plain numbers ('1.5', not '1.5×10⁰') on a log axis that spans less than
    a decade or so (e.g. a weight norm that grows from 1 to 3)."""
    from matplotlib.ticker import FuncFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    _tidy_log_axis(target, plain=True)


def _tidy_log_axis(axis, plain: bool = False) -> None:
    """At most a few labels on a log axis: minor ticks labelled (2 and 5 of each decade) only
    when the axis spans less than a decade, so that no two tick labels collide."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    lo, hi = sorted(axis.get_view_interval())
    span = hi / lo if lo > 0 else float("inf")
    if span < 10:
        axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    else:  # a decade or more: the major labels suffice, and no minor ticks to lay out (the
        # minor ticks of many-decade log axes were most of a figure's drawing time)
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())


def tidy_log_ticks(fig) -> None:
    """:func:`_tidy_log_axis` for every log axis of ``fig`` (called by :func:`save`)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                _tidy_log_axis(axis)


def save(fig, path, dpi: int | None = None) -> Path:
    """Save ``fig`` (its constrained layout) as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tidy_log_ticks(fig)
    fig.savefig(path, dpi=dpi or RC["savefig.dpi"])
    plt.close(fig)
    return path


def _texts(fig, renderer):
    """Every drawn, non-empty text artist of ``fig``: titles, axis labels, legends, annotations
    and the tick labels of the ticks inside the view (matplotlib keeps labels of the others,
    undrawn)."""
    from matplotlib.axis import Axis, Tick
    from matplotlib.text import Text

    ticks = set()
    for t in fig.findobj(Tick):
        ticks.update({id(t.label1), id(t.label2)})
    drawn = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks drawn (inside the view interval)
                drawn += [lab for lab, on in ((tick.label1, tick.label1.get_visible()),
                                              (tick.label2, tick.label2.get_visible())) if on]
    seen = set()
    for t in [t for t in fig.findobj(Text) if id(t) not in ticks] + drawn:
        if id(t) in seen or not t.get_visible() or not t.get_text().strip():
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        if isinstance(t.get_parent() if hasattr(t, "get_parent") else None, Axis):
            continue
        seen.add(id(t))
        yield t


def text_problems(fig, min_font: float = MIN_FONT) -> list[str]:
    """What breaks the text conventions of a drawn figure, as readable lines (empty: none):
    a text smaller than ``min_font`` points, a text that leaves the figure, or two texts whose
    rendered boxes overlap (measured with the figure's renderer, at its saved size)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    boxes, problems = [], []
    for t in _texts(fig, renderer):
        name = repr(t.get_text()[:40])
        if t.get_fontsize() < min_font - 1e-9:
            problems.append(f"{name}: {t.get_fontsize():.1f} pt < {min_font:g} pt")
        box = t.get_window_extent(renderer)
        if box.width <= 0 or box.height <= 0:
            continue
        if (box.x0 < fig_box.x0 - 1 or box.y0 < fig_box.y0 - 1 or box.x1 > fig_box.x1 + 1
                or box.y1 > fig_box.y1 + 1):
            problems.append(f"{name}: clipped (outside the figure)")
        boxes.append((name, box))
    for (na, a), (nb, b) in itertools.combinations(boxes, 2):
        shrink = 1.0  # pixels of tolerance: glyph boxes include some padding
        if (min(a.x1, b.x1) - max(a.x0, b.x0) > shrink
                and min(a.y1, b.y1) - max(a.y0, b.y0) > shrink):
            problems.append(f"{na} overlaps {nb}")
    return problems
