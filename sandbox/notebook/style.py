"""One plotting style for every notebook: seaborn theme, a fixed colour per rule, inline display.

- :func:`use_style` — the seaborn theme (whitegrid) with the figure conventions of
  :mod:`sandbox.plotting` (fonts ≥ 8 pt, constrained layout, the Okabe–Ito colour-blind-safe
  palette); call it in a notebook's first cell (the drawing helpers of this package call it
  too, because some library calls reset the theme).
- :func:`rule_colors` — the SAME colour for a rule in every figure: base rules take an
  Okabe–Ito colour and projected variants (``sgdp``, ``adamp``, ``adaip``, …) a lighter shade of
  it, so a rule and its projected form read as a pair.
- :func:`show` — display a figure inline and close it. Several library modules select the
  non-interactive 'Agg' backend when imported (``sandbox.compare``, ``sandbox.verify.figures``,
  ``sandbox.escape.plots``), after which ``plt.show()`` in a Jupyter kernel shows nothing and a
  figure left at the end of a cell is not drawn; :func:`show` renders the PNG itself, which
  works under any backend, and :func:`use_style` restores the inline backend.
- :func:`show_png` — display a PNG written by a command (``verify``, ``compare``) in the notebook.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

INLINE = "module://matplotlib_inline.backend_inline"
# Pairs (base, projected variant) sharing a hue: base the Okabe–Ito colour, variant lighter.
_PAIRS = (("sgd", "sgdp"), ("adamw", "adamp"), ("adai", "adaip"), ("adaiw", "adaiwp"),
          ("rfadamw", "rfadamwp"), ("rfrmsprop", "rfrmspropp"))
# inline figures at 100 dpi: a 6.4-inch figure is 640 px wide, 8-pt text 11 px tall
RC = {"figure.dpi": 100, "savefig.dpi": 110}


def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with jupyter
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def use_style(context: str = "notebook") -> None:
    """Apply the notebooks' seaborn theme; inside a kernel, restore the inline backend if a
    library import switched matplotlib to 'Agg'."""
    import matplotlib
    import seaborn as sns

    from sandbox.plotting import rc

    sns.set_theme(style="whitegrid", context=context, palette="colorblind", rc={**rc(), **RC})
    if in_kernel() and matplotlib.get_backend().lower() == "agg":
        from IPython import get_ipython

        get_ipython().run_line_magic("matplotlib", "inline")  # backend AND figure formatters


def rule_colors(rules: Iterable[str]) -> dict:
    """A fixed colour for each rule name (same rule, same colour, in every notebook).

    Registered rules get an Okabe–Ito colour per family (base rule full, projected variant a
    lighter shade of it); any other label (e.g. the escape arm 'momentum') gets a grey-free
    colour-blind-palette colour chosen by its position in ``rules``.
    """
    import seaborn as sns

    from sandbox.plotting import PALETTE

    fixed = {}
    for i, (base, proj) in enumerate(_PAIRS):
        c = sns.color_palette([PALETTE[i]])[0]
        fixed[base], fixed[proj] = c, tuple(0.55 * x + 0.45 for x in c)
    fixed["adam"] = sns.color_palette([PALETTE[len(_PAIRS)]])[0]  # no projected form of its own
    extra = iter(sns.color_palette([PALETTE[7]] + list(sns.color_palette("colorblind", 10))))
    out = {}
    for r in dict.fromkeys(rules):
        out[r] = fixed.get(str(r).lower()) or next(extra, (0.3, 0.3, 0.3))
    return out


def label_colors(labels: Iterable[str], rules: Iterable[str]) -> dict:
    """A colour per label where labels are runs of rules (``rules[i]`` is the rule of
    ``labels[i]``): the first label of a rule gets the rule's own colour, further labels of the
    same rule darker shades of it (in the order given)."""
    import seaborn as sns

    pairs = list(dict.fromkeys(zip(labels, rules)))
    base = rule_colors(r for _, r in pairs)
    out = {}
    for rule in dict.fromkeys(r for _, r in pairs):
        mine = [lab for lab, r in pairs if r == rule]
        if len(mine) == 1:
            out[mine[0]] = base[rule]
            continue
        c = base[rule]
        dark = tuple(0.35 * x for x in c)
        out.update(zip(mine, sns.blend_palette([c, dark], len(mine))))
    return out


def plain_log_ticks(ax, axis: str = "y") -> None:
    """Tick labels as plain numbers on a log axis that spans about a decade (e.g. a weight norm
    growing from 1 to 3), without colliding minor labels (:func:`sandbox.plotting.plain_log_ticks`)."""
    from sandbox.plotting import plain_log_ticks as plain

    plain(ax, axis)


def show(fig) -> None:
    """Display ``fig`` inline as a PNG and close it (outside a kernel: just close it).

    The PNG is rendered here rather than left to the backend, so it shows whatever backend a
    library import selected."""
    import matplotlib.pyplot as plt

    if in_kernel():
        from IPython.display import Image, display

        display(Image(data=png_bytes(fig)))
    plt.close(fig)


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (log ticks tidied as :func:`sandbox.plotting.save` does), closed."""
    import io

    import matplotlib.pyplot as plt

    from sandbox.plotting import tidy_log_ticks

    buf = io.BytesIO()
    tidy_log_ticks(fig)
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def show_png(path: str | Path, width: int | None = 900) -> bool:
    """Display a PNG file inline; returns False (and prints why) when the file is missing."""
    path = Path(path)
    if not path.is_file():
        print(f"no figure at {path} (run the command that draws it first)")
        return False
    if in_kernel():
        from IPython.display import Image, display

        display(Image(filename=str(path), width=width))
    return True
