"""The colour of each rule in every figure of a comparison.

One mapping, kept in one place: :func:`sandbox.notebook.style.rule_colors` (the notebooks use it
too), so a rule has the same colour in the notebook, in ``compare``'s saved figures and in the
performance profiles. Base rules take an Okabe–Ito colour and their projected variants a lighter
shade of it (sgd/sgdp, adamw/adamp, adai/adaip, ...).
"""
from __future__ import annotations

from typing import Iterable


def rule_colors(rules: Iterable[str]) -> dict:
    """{rule: RGB colour} for ``rules`` (the same colour for a rule whatever the others are)."""
    from sandbox.notebook.style import rule_colors as mapping

    return mapping(rules)


def shades(color, n: int) -> list:
    """``n`` shades of ``color`` from itself to a darker tone (a rule's layers in one panel)."""
    import seaborn as sns

    if n <= 1:
        return [color][:n]
    dark = tuple(0.45 * x for x in color)
    return list(sns.blend_palette([color, dark], n))
