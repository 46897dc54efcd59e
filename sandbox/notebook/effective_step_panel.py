r"""Notebook 01's live panel: rule, lr, momentum, weight decay, projection → the noise-driven toy
re-run through the real optimizer, and predicted vs measured ‖w_t‖ and Δ_t redrawn.

Experiment and prediction: :mod:`sandbox.notebook.toy_runs` (the noise-driven toy of
:func:`sandbox.experiments.effective_step.run_noise_toy`; theory §2–3: Δ_t → 1/sqrt((k+1)Mt)
without decay, Δ_t → Δ* = sqrt(2ηλ_eff/M) with decay, constant Δ and geometric growth for
root-free rules).

The momentum control sets the rule's own coefficient: ``momentum`` (heavy ball), β1 =
``betas[0]`` (EMA), or for Adai β0 = 1 − momentum (its mean inertia is 1 − β0). The projection
checkbox sets ``project`` (every rule has it: SGDP/AdamP with it off are their base rules). A
rule change resets the learning rate to one of the rule's scale (:func:`typical_lr`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import sandbox

from .style import plain_log_ticks, png_bytes, rule_colors, use_style
from .toy_runs import Prediction, late_ratios, predict_effective_step, run_effective_step

WEIGHT_DECAYS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


LR_BY_DEGREE = {1: 0.1, 0: 1e-2, -1: 1e-3}


def typical_lr(rule: str) -> float:
    """A learning rate of the right scale for the toy, by the rule's homogeneity degree k:
    0.1 (k = 1: SGD, SGDP, Adai), 1e-2 (k = 0: Adam family), 1e-3 (k = −1: root-free)."""
    return LR_BY_DEGREE.get(int(sandbox.info(rule).homogeneity), 1e-2)


def default_project(rule: str) -> bool:
    """Whether ``rule`` projects by default (SGDP, AdamP and the '+p' variants)."""
    return bool(sandbox.info(rule).defaults.get("project", False))


def panel_hyperparameters(rule: str, lr: float, momentum: float, weight_decay: float,
                          project: bool, batch_size: int = 1) -> dict:
    """The ``sandbox.create`` keywords for the panel's controls (see the module docstring).

    Raises ValueError naming the bad value: lr > 0, momentum in [0, 1), weight_decay >= 0.
    """
    if not lr > 0:
        raise ValueError(f"lr={lr!r}: must be > 0")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum={momentum!r}: must lie in [0, 1)")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay={weight_decay!r}: must be >= 0")
    spec = sandbox.info(rule)
    d = spec.defaults
    hp = {"lr": float(lr), "weight_decay": float(weight_decay), "project": bool(project)}
    if spec.momentum_kind == "heavy_ball":
        hp["momentum"] = float(momentum)
    elif spec.momentum_kind == "ema":
        hp["betas"] = (float(momentum), d["betas"][1])
    elif spec.momentum_kind == "adaptive":  # Adai: mean inertia 1 − β0; β0 ∈ [0.01, 1]
        hp["betas"] = (float(min(1.0, max(0.01, 1.0 - momentum))), d["betas"][1])
    if "batch_size" in d:
        hp["batch_size"] = int(batch_size)
    return hp


def draw_effective_step(table: pd.DataFrame, prediction: Prediction | None = None, axes=None,
                        title: str = ""):
    """Two log-log panels: ‖w_t‖ and Δ_t against the step; measured rms (points) with the
    5–95% band over replicas, predicted (line), the no-decay asymptote (dotted) and Δ* (dashed).
    Returns the figure."""
    import matplotlib.pyplot as plt

    from sandbox.plotting import BAND, MEASURED, predicted_kw, thin

    use_style()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    fig = axes[0].figure
    rule = str(table["rule"].iloc[0])
    color = rule_colors([rule])[rule]
    labels = {"norm": "weight norm ‖w_t‖ (units of ‖w_0‖)", "delta": "angular step Δ_t (rad)"}
    for ax, q in zip(axes, ("norm", "delta")):
        part = table[(table["quantity"] == q) & (table["step"] >= 1)].sort_values("step")
        ax.fill_between(part["step"], part["q05"], part["q95"], color=color, **BAND,
                        label="measured 5–95% (replicas)")
        ax.plot(*thin(part["step"], part["rms"]), color=color, mfc="none", **MEASURED,
                label="measured rms")
        if np.isfinite(part["predicted"]).any():
            ax.plot(part["step"], part["predicted"], **predicted_kw("k"), label="predicted")
        if q == "delta" and prediction is not None:
            if prediction.asymptote is not None:
                keep = prediction.steps >= 1
                ax.plot(prediction.steps[keep], prediction.asymptote[keep], ":", color="0.4",
                        lw=1.2, zorder=3, label="1/sqrt((k+1)Mt)")
            if np.isfinite(prediction.delta_star):
                ax.axhline(prediction.delta_star, ls="--", color="0.3", lw=1, zorder=3,
                           label=f"Δ* = {prediction.delta_star:.3g}")
        if q == "norm" and prediction is not None and np.isfinite(prediction.crossover_radius):
            ax.axhline(prediction.crossover_radius, ls="--", color="0.3", lw=1, zorder=3,
                       label="damping crossover r_c")
        ax.set(xscale="log", yscale="log", xlabel="step t", ylabel=labels[q])
        if q == "norm":
            plain_log_ticks(ax)
        ax.legend(loc="best")
    ratios = late_ratios(table)
    verdict = ", ".join(f"{q}: measured/predicted = {r:.3f}" for q, r in ratios.items()
                        if np.isfinite(r)) or "no prediction to compare"
    fig.suptitle((title + "\n" if title else "") + f"late window: {verdict}")
    return fig


class EffectiveStepPanel:
    """The interactive panel (ipywidgets): controls → re-run → redraw.

    >>> panel = EffectiveStepPanel(steps=1000)     # doctest: +SKIP
    >>> panel.widget                               # displays it in a notebook  # doctest: +SKIP

    ``update()`` re-runs with the current control values (what every control change calls) and
    returns the table; ``set(rule=..., lr=..., ...)`` changes several controls with one re-run.
    """

    def __init__(self, steps: int = 2000, replicas: int = 128, d: int = 64, seed: int = 0,
                 device: str = "cpu", rule: str = "sgd", lr: float | None = None,
                 momentum: float = 0.9, weight_decay: float = 0.0, project: bool | None = None):
        import ipywidgets as W

        if weight_decay not in WEIGHT_DECAYS:
            raise ValueError(f"weight_decay={weight_decay!r}: the panel offers {WEIGHT_DECAYS}")
        self.steps, self.replicas, self.d, self.seed, self.device = steps, replicas, d, seed, device
        self.table: pd.DataFrame | None = None
        self.prediction: Prediction | None = None
        self._hold = False
        lr = typical_lr(rule) if lr is None else lr
        project = default_project(rule) if project is None else project
        # room for the controls' labels (the default 'description' width cuts "weight decay")
        # and sliders long enough to aim (the default is ~125 px); a Layout per control
        def wide():
            return dict(style={"description_width": "110px"}, layout=W.Layout(width="420px"))

        self.rule = W.Dropdown(options=sandbox.available(), value=rule, description="rule", **wide())
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-5, max=0, step=0.05,
                                   description="lr", readout_format=".2e", continuous_update=False,
                                   **wide())
        self.momentum = W.FloatSlider(value=momentum, min=0.0, max=0.99, step=0.01,
                                      description="momentum", continuous_update=False, **wide())
        self.weight_decay = W.SelectionSlider(options=list(WEIGHT_DECAYS), value=weight_decay,
                                              description="weight decay", continuous_update=False,
                                              **wide())
        self.project = W.Checkbox(value=project, description="radial projection", **wide())
        self.status = W.HTML()
        # the figure is an Image widget whose PNG is replaced on every re-run (an Output widget
        # cleared and refilled left headless nbclient waiting a whole cell timeout at random)
        self.figure = W.Image(format="png")
        for c in (self.lr, self.momentum, self.weight_decay, self.project):
            c.observe(self._changed, names="value")
        self.rule.observe(self._rule_changed, names="value")
        self.widget = W.VBox([W.HBox([self.rule, self.project]), W.HBox([self.lr, self.momentum]),
                              self.weight_decay, self.status, self.figure])

    def _rule_changed(self, change) -> None:
        # a new rule starts at a learning rate of its own scale and its own projection default
        # (one re-run, not three)
        held, self._hold = self._hold, True
        try:
            self.lr.value = typical_lr(change["new"])
            self.project.value = default_project(change["new"])
        finally:
            self._hold = held
        if not held:
            self.update()

    def _changed(self, change) -> None:
        if not self._hold:
            self.update()

    def set(self, **values) -> pd.DataFrame:
        """Set controls by name (rule, lr, momentum, weight_decay, project), then re-run once."""
        names = ("rule", "lr", "momentum", "weight_decay", "project")
        bad = [n for n in values if n not in names]
        if bad:
            raise ValueError(f"unknown control(s) {bad}: expected {', '.join(names)}")
        self._hold = True
        try:  # the rule first: its change resets lr and project, which values may then set
            for name in sorted(values, key=lambda n: n != "rule"):
                getattr(self, name).value = values[name]
        finally:
            self._hold = False
        return self.update()

    def hyperparameters(self) -> dict:
        return panel_hyperparameters(self.rule.value, self.lr.value, self.momentum.value,
                                     self.weight_decay.value, self.project.value)

    def update(self) -> pd.DataFrame | None:
        rule = self.rule.value
        try:
            hp = self.hyperparameters()
            self.status.value = f"running {rule} {hp} on {self.replicas} replicas × d={self.d} …"
            table = run_effective_step(rule, hp, self.steps, self.replicas, self.d,
                                       seed=self.seed, device=self.device)
            pred = predict_effective_step(rule, hp, np.sort(table["step"].unique()), self.d)
        except (ValueError, RuntimeError) as e:  # e.g. a divergent setting: say so, keep going
            self.status.value = f"<b>{type(e).__name__}</b>: {e}"
            return None
        self.table, self.prediction = table, pred
        self.status.value = (f"<b>{rule}</b> {hp}<br>prediction: {pred.kind}; "
                             + "; ".join(pred.notes))
        self.figure.value = png_bytes(draw_effective_step(table, pred, title=f"{rule}: {hp}"))
        return table
