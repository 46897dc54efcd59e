r"""Notebook 06: schedules and corrected weight decay — the live panel, the BN-net figure and the
verdict rows.

The panel (:class:`SchedulePanel`, ipywidgets; controls: schedule kind, λ, β, rule) runs the
noise-driven toy of :mod:`sandbox.experiments.schedule_toy` through the real optimizer with the lr
set to γ_t before each step, and draws predicted (:func:`~sandbox.experiments.schedule_toy.
predict_schedule`, lines above) against measured (rms over replicas: markers; the spread of the
replica groups' rms: band) r_t, Δ_t and ‖g_t‖/‖w_t‖ side by side. A rule or schedule the theory
does not cover (:class:`theory.schedules.NotCovered`, e.g. RV-AdamW's rotation) is drawn measured
only, and the status line says why. Headless (no widget frontend): the constructor builds the
controls, :meth:`SchedulePanel.update` runs and draws once into the Image widget, and
:func:`draw_schedule_panel` draws the same figure anywhere.

Per rule the panel starts from a setting where the predictions were validated (within 5% on r,
10% on Δ and ‖g‖/‖w‖): :data:`SETTINGS` (Adam family: peak 0.05, λ = 0.05, betas (0.9, 0.99),
eps 0, r0 = 2, a 100-step warm-up; SGD(C): momentum 0.9, λ = 5e-3, peak 0.1, r0 = 8; Lion: peak
2e-3, λ = 0.1, r0 = 3; see :func:`rule_setting` for schedules without a warm-up).
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import pandas as pd

import sandbox

from .style import png_bytes, rule_colors, use_style

RULES = ("adamw", "adamc", "adamp", "rvadamw", "sgd", "sgdc", "lion")
KINDS = ("warmup_cosine", "cosine", "warmup_linear", "step", "constant")
WEIGHT_DECAYS = (0.0, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5)
SETTINGS = {"adam": {"peak": 0.05, "weight_decay": 0.05, "r0": 2.0, "beta": 0.9},
            "sgd": {"peak": 0.1, "weight_decay": 5e-3, "r0": 8.0, "beta": 0.9},
            "lion": {"peak": 2e-3, "weight_decay": 0.1, "r0": 3.0, "beta": 0.9}}
LABELS = {"norm": "weight norm ‖w_t‖", "delta": "angular step Δ_t (rad)",
          "grad_ratio": "‖g_t‖ / ‖w_t‖"}
# rules that rule_colors leaves without a colour of their own (sgdc would share sgd's blue)
OWN_COLORS = {"adamc": "#000000", "sgdc": "#D55E00", "rvadamw": "#CC79A7", "lion": "#56B4E9"}
DELTA_FLOOR = 0.01  # float32 cannot resolve Δ_t where γ_t < ~1% of the peak: not drawn there


def colors_of(rules: Iterable[str]) -> dict:
    """:func:`~sandbox.notebook.style.rule_colors`, with :data:`OWN_COLORS` for the corrected
    and rotational rules (as RGB tuples)."""
    from matplotlib.colors import to_rgb

    rules = list(rules)
    base = rule_colors(rules)
    return {r: to_rgb(OWN_COLORS[r]) if r in OWN_COLORS else tuple(base[r]) for r in rules}


# --- settings --------------------------------------------------------------------------------
def family(rule: str) -> str:
    """'sgd' (heavy-ball momentum), 'lion' (a sign update) or 'adam' (everything else)."""
    spec = sandbox.info(rule)
    if spec.momentum_kind == "heavy_ball":
        return "sgd"
    from sandbox.optim.traits import size_laws

    return "lion" if "sign" in size_laws(rule) else "adam"


def rule_setting(rule: str, kind: str = "warmup_cosine") -> dict:
    """The validated starting point of ``rule``: peak lr, λ, r0 and β (:data:`SETTINGS`). Without
    a warm-up the Adam family starts from r0 = 10 instead of 2: its first angle γ√d/r0 must stay
    below (1 − β1)/2 for the theory to cover the run (at r0 = 2 it is 0.2)."""
    out = dict(SETTINGS[family(rule)])
    if family(rule) == "adam" and not kind.startswith("warmup"):
        out["r0"] = 10.0
    return out


def panel_schedule(kind: str, steps: int, peak: float):
    """The schedule of the panel: a warm-up over steps/30 for the warm-up kinds, milestones at
    1/2 and 3/4 of the run (factor 0.1) for 'step'."""
    from theory.schedules import schedule

    if kind not in KINDS:
        raise ValueError(f"schedule kind {kind!r}: the panel offers {KINDS}")
    extra = {}
    if kind.startswith("warmup"):  # the validated 100 steps (at most a third of a short run)
        extra["warmup"] = max(1, min(steps // 3, max(100, steps // 30)))
    if kind == "step":
        extra["milestones"] = (steps // 2, 3 * steps // 4)
    return schedule(kind, steps, peak, **extra)


def panel_hyperparameters(rule: str, weight_decay: float, beta: float) -> dict:
    """``sandbox.create`` keywords for the controls: β is the heavy ball's ``momentum`` or
    ``betas[0]`` (Adam family, Lion: β2 = 0.99); Adam's eps is 0 (the toy's gradients are tiny)."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta={beta!r}: must lie in [0, 1)")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay={weight_decay!r}: must be >= 0")
    hp = {"weight_decay": float(weight_decay)}
    fam = family(rule)
    if fam == "sgd":
        hp["momentum"] = float(beta)
    else:
        hp["betas"] = (float(beta), 0.99)
        if fam == "adam" and "eps" in sandbox.info(rule).defaults:
            hp["eps"] = 0.0
    return hp


# --- one run: measured and predicted ----------------------------------------------------------
def measured_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Per step and quantity of a :func:`~sandbox.experiments.schedule_toy.run_schedule_toy`
    table: ``rms`` over all replicas and ``lo``/``hi``, the smallest and largest rms of one
    replica group."""
    t = table.assign(group_rms=np.sqrt(table["sum_sq"] / table["n"]))
    by = t.groupby(["quantity", "step"])
    out = by[["sum_sq", "n"]].sum()
    out["rms"] = np.sqrt(out["sum_sq"] / out["n"])
    out["lo"], out["hi"] = by["group_rms"].min(), by["group_rms"].max()
    out["gamma"] = by["gamma"].first()
    return out.reset_index()[["quantity", "step", "gamma", "rms", "lo", "hi"]]


def run_panel(rule: str, kind: str, weight_decay: float, beta: float, steps: int = 3000,
              replicas: int = 256, d: int = 64, seed: int = 0, every: int = 10,
              groups: int = 8) -> dict:
    """Run the toy and its prediction for the panel's controls. Returns ``{"table": the toy's
    tidy table, "measured": measured_frame, "predicted": prediction frame or None, "traj": the
    Trajectory or None, "sched", "hp", "r0", "d", "note"}`` (``note``: why there is no
    prediction, or '')."""
    from sandbox.experiments.schedule_toy import (NotCovered, predict_schedule, prediction_frame,
                                                  run_schedule_toy)

    setting = rule_setting(rule, kind)
    sched = panel_schedule(kind, steps, setting["peak"])
    hp = panel_hyperparameters(rule, weight_decay, beta)
    table = run_schedule_toy(rule, sched, replicas, d, r0=setting["r0"], seed=seed,
                             groups=min(groups, replicas), every=every, **hp)
    note, predicted, traj = "", None, None
    try:
        traj = predict_schedule(rule, sched, d, r0=setting["r0"], **hp)
        predicted = prediction_frame(traj, rule)
    except NotCovered as e:
        note = f"no prediction: {e}"
    return {"table": table, "measured": measured_frame(table), "predicted": predicted,
            "traj": traj, "sched": sched, "hp": hp, "r0": setting["r0"], "d": d, "note": note}


def draw_schedule_panel(run: dict, rule: str, axes=None, title: str = ""):
    """Three panels side by side: r_t, Δ_t (log) and ‖g_t‖/‖w_t‖ against the step; measured rms
    (markers) with the replica groups' spread (band), predicted (black line, drawn above), and the
    lr schedule γ_t/γ_max (grey, right axis of the first panel). Returns the figure."""
    import matplotlib.pyplot as plt

    from sandbox.plotting import BAND, MEASURED, predicted_kw, thin

    use_style()
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.9), layout="constrained")
    fig = axes[0].figure
    color = colors_of([rule])[rule]
    m, p, sched = run["measured"], run["predicted"], run["sched"]
    peak = sched.peak
    for ax, q in zip(axes, ("norm", "delta", "grad_ratio")):
        part = m[m["quantity"] == q].sort_values("step")
        if q == "delta":  # float32 cannot resolve Δ at γ_t < ~1% of the peak
            part = part[part["gamma"] >= DELTA_FLOOR * peak]
        ax.fill_between(part["step"], part["lo"], part["hi"], color=color, **BAND,
                        label="replica groups' spread")
        ax.plot(*thin(part["step"], part["rms"], log=False), color=color,
                **{**MEASURED, "ms": 4.5, "mec": tuple(0.55 * c for c in color[:3]), "alpha": 1.0},
                label="measured rms (over replicas)")
        if p is not None:
            pp = p[(p["quantity"] == q) & (p["step"] >= 1)].sort_values("step")
            if q == "delta":
                pp = pp[pp["gamma"] >= DELTA_FLOOR * peak]
            ax.plot(pp["step"], pp["predicted"], **predicted_kw("k", zorder=4), label="predicted")
        ax.set(xlabel="step t", ylabel=LABELS[q])
        if q == "delta":
            ax.set_yscale("log")
    lr_ax = axes[0].twinx()
    lr_ax.plot(np.arange(len(sched.gamma)), sched.gamma / peak, color="0.55", lw=1.0, ls="--",
               zorder=0, label="γ_t/γ_max")
    lr_ax.set(ylim=(0, 1.6), ylabel="γ_t / γ_max")
    lr_ax.grid(False)
    lr_ax.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    handles, labels = axes[0].get_legend_handles_labels()
    h2, l2 = lr_ax.get_legend_handles_labels()
    fig.legend(handles + h2, labels + l2, loc="outside lower center", ncol=4)
    note = run.get("note") or ""
    fig.suptitle((title + "\n" if title else "") + (note or "black lines: theory.schedules "
                                                    "prediction; markers: measured"))
    return fig


# --- notebook 06: the toy side by side and its verdict rows -------------------------------------


def toy_runs(rules: Iterable[str], kind: str = "warmup_cosine", steps: int = 3000,
             replicas: int = 256, d: int = 64, seed: int = 0, progress=None) -> dict:
    """{rule: :func:`run_panel` at the rule's validated setting (β = 0.9), recorded every step
    (the verdict rule smooths over 1/(1 − β) steps)."""
    rules = list(rules)
    it = progress(rules, desc="toy") if progress else rules
    return {r: run_panel(r, kind, rule_setting(r)["weight_decay"], 0.9, steps, replicas, d, seed,
                         every=1) for r in it}


# --- the panel ---------------------------------------------------------------------------------
class SchedulePanel:
    """The interactive panel (ipywidgets): schedule kind, λ, β, rule → re-run → redraw.

    >>> panel = SchedulePanel(steps=1500)     # doctest: +SKIP
    >>> panel.update(); panel.widget          # doctest: +SKIP

    A rule change resets λ and β to the rule's validated setting (one re-run). ``update()``
    re-runs with the current controls and returns the run (see :func:`run_panel`);
    ``set(rule=..., kind=..., weight_decay=..., beta=...)`` changes several with one re-run.
    """

    CONTROLS = ("rule", "kind", "weight_decay", "beta")

    def __init__(self, steps: int = 3000, replicas: int = 256, d: int = 64, seed: int = 0,
                 rule: str = "adamw", kind: str = "warmup_cosine",
                 weight_decay: Optional[float] = None, beta: Optional[float] = None,
                 rules: Iterable[str] = RULES):
        import ipywidgets as W

        self.steps, self.replicas, self.d, self.seed = steps, replicas, d, seed
        self.run: Optional[dict] = None
        self.png: bytes = b""
        self._hold = False
        setting = rule_setting(rule)
        weight_decay = setting["weight_decay"] if weight_decay is None else weight_decay
        if weight_decay not in WEIGHT_DECAYS:
            raise ValueError(f"weight_decay={weight_decay!r}: the panel offers {WEIGHT_DECAYS}")

        def wide():
            return dict(style={"description_width": "110px"}, layout=W.Layout(width="420px"))

        self.rule = W.Dropdown(options=list(rules), value=rule, description="rule", **wide())
        self.kind = W.Dropdown(options=list(KINDS), value=kind, description="schedule", **wide())
        self.weight_decay = W.SelectionSlider(options=list(WEIGHT_DECAYS), value=weight_decay,
                                              description="weight decay λ",
                                              continuous_update=False, **wide())
        self.beta = W.FloatSlider(value=setting["beta"] if beta is None else beta, min=0.0,
                                  max=0.99, step=0.01, description="β (momentum / β1)",
                                  continuous_update=False, **wide())
        self.status = W.HTML()
        self.figure = W.Image(format="png")  # replaced on every re-run (see notebook 01's panel)
        for c in (self.kind, self.weight_decay, self.beta):
            c.observe(self._changed, names="value")
        self.rule.observe(self._rule_changed, names="value")
        self.widget = W.VBox([W.HBox([self.rule, self.kind]),
                              W.HBox([self.weight_decay, self.beta]), self.status, self.figure])

    def _rule_changed(self, change) -> None:
        held, self._hold = self._hold, True
        try:
            s = rule_setting(change["new"])
            self.weight_decay.value, self.beta.value = s["weight_decay"], s["beta"]
        finally:
            self._hold = held
        if not held:
            self.update()

    def _changed(self, change) -> None:
        if not self._hold:
            self.update()

    def set(self, **values) -> Optional[dict]:
        """Set controls by name (rule, kind, weight_decay, beta), then re-run once."""
        bad = [n for n in values if n not in self.CONTROLS]
        if bad:
            raise ValueError(f"unknown control(s) {bad}: expected {', '.join(self.CONTROLS)}")
        self._hold = True
        try:  # the rule first: it resets λ and β, which values may then set
            for name in sorted(values, key=lambda n: n != "rule"):
                getattr(self, name).value = values[name]
        finally:
            self._hold = False
        return self.update()

    def update(self) -> Optional[dict]:
        rule, kind = self.rule.value, self.kind.value
        try:
            self.status.value = f"running {rule} under {kind} on {self.replicas} replicas …"
            run = run_panel(rule, kind, self.weight_decay.value, self.beta.value, self.steps,
                            self.replicas, self.d, self.seed)
        except (ValueError, RuntimeError) as e:  # e.g. a divergent setting: say so, keep going
            self.status.value = f"<b>{type(e).__name__}</b>: {e}"
            return None
        self.run = run
        self.status.value = (f"<b>{rule}</b> {run['hp']}, {kind}, peak lr {run['sched'].peak:g}"
                             + (f"<br>{run['note']}" if run["note"] else ""))
        self.png = png_bytes(draw_schedule_panel(run, rule, title=f"{rule} · {kind}"))
        self.figure.value = self.png
        return run


__all__ = ["SchedulePanel", "run_panel", "toy_runs", "draw_schedule_panel", "measured_frame",
           "panel_hyperparameters", "panel_schedule", "rule_setting", "RULES", "KINDS",
           "SETTINGS"]
