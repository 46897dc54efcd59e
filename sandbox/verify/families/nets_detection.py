"""The detection claims of the ``nets`` family (theory §4; module docstring of
:mod:`sandbox.verify.families.nets`): AdamP's scale-invariance test against the module graph's
ground truth, restated to where the theory predicts false positives, and under bf16 autocast."""
from __future__ import annotations

import pandas as pd
import torch

from ..base import VerifyConfig
from ..intervals import proportion_interval
from .nets import EQUILIBRIUM, _progress, _row, _run_path, _status, _threads


def _equilibrium_layers(pooled: pd.DataFrame) -> set:
    """The layers where the theory predicts false positives: not scale-invariant, and decayed
    (a matrix: the equilibrium runs decay every parameter with more than one dimension)."""
    d = pooled.drop_duplicates("layer")
    return {r.layer for r in d.itertuples()
            if not bool(r.scale_invariant) and int(r.d) > int(r.channels)}


def detection_rows(cfg: VerifyConfig, problem, plan: dict, fp32: list[pd.DataFrame],
                   sections: dict | None = None):
    from theory.detection import rounding_abs_cosine

    from ...probes.analysis import detection_by_layer, detection_scores
    from ...probes.runs import probed_run

    sections = sections or {"fp32": True, "bf16": True}
    rows, frames = [], []
    pooled = pd.concat(fp32, ignore_index=True) if fp32 else None
    if sections["fp32"] and pooled is not None:
        where_fp = _equilibrium_layers(pooled)
        rest = pooled[~pooled.layer.isin(where_fp)]
        s, s_all = detection_scores(rest), detection_scores(pooled)
        status = _status("detection.false_positives")
        layers_note = _layer_note(detection_by_layer(pooled))
        excluded = ", ".join(sorted(where_fp)) or "none"
        where = (f"{problem.name}, every recorded step of the fp32 equilibrium runs; layers where "
                 f"false positives are predicted (not invariant, decayed): {excluded}")
        rows.append(_row("nets.detection.fp32.precision", "all",
                         where + "; precision over the other layers", 1.0, s["precision"], 0.0,
                         status, "absolute", f"TP {s['tp']}, FP {s['fp']} of {s['n']} records; "
                         + layers_note))
        rows.append(_row("nets.detection.fp32.recall", "all", where, 1.0, s_all["recall"], 0.0,
                         _status("detection.threshold"), "absolute",
                         f"TP {s_all['tp']}, FN {s_all['fn']} of {s_all['n']} records"))
        eq = pooled[pooled.layer.isin(where_fp) & pooled.detected.notna()]
        fired = int((eq.detected.astype(int) > 0).sum())
        rows.append(_row("nets.detection.fp32.equilibrium_fire_rate", "all",
                         f"{problem.name}: {excluded}, fp32 equilibrium runs", None,
                         fired / len(eq) if len(eq) else float("nan"), 0.0, "open", "absolute",
                         f"{fired} of {len(eq)} records fired (false positives, all overall: "
                         f"{s_all['fp']})", interval=proportion_interval(fired, len(eq))))
    if not sections["bf16"] or not plan.get("bf16_rules"):
        return rows, frames
    bf = []
    for rule in _progress(cfg, list(plan["bf16_rules"]), "nets: bf16 detection"):
        hp = EQUILIBRIUM[rule]
        config = dict(problem=problem.name, size=problem.size, device=str(problem.device), hp=hp,
                      steps=plan["bf16_steps"], schedule=5, autocast="bfloat16", decay_vectors=False)
        bf.append(probed_run(problem, rule, hp, plan["bf16_steps"], seed=0, schedule=5,
                             autocast=torch.bfloat16, decay_vectors=False, threads=_threads(cfg),
                             labels={"experiment": "bf16"},
                             path=_run_path(cfg, "bf16", rule, 0, config)))
    frames += bf
    b = pd.concat(bf, ignore_index=True)
    sb = detection_scores(b)
    for metric in ("precision", "recall"):
        rows.append(_row(f"nets.detection.bf16.{metric}", ",".join(plan["bf16_rules"]),
                         f"{problem.name}, forward under torch.autocast(bfloat16)", 1.0, sb[metric],
                         0.0, "open", "absolute",
                         f"TP {sb['tp']}, FP {sb['fp']}, FN {sb['fn']} of {sb['n']} records; "
                         + _layer_note(detection_by_layer(b))))
    inv = b[b.scale_invariant.astype(bool)]
    for layer, g in inv.groupby("layer"):
        L, C = int(g.d.iloc[0] // g.channels.iloc[0]), int(g.channels.iloc[0])
        floor = float(rounding_abs_cosine(L, rows=C))
        fp_note = ""
        if pooled is not None:
            fp = pooled[(pooled.layer == layer) & (pooled.rule.isin(plan["bf16_rules"]))]
            fp_note = f"fp32 median {fp.cos_channel.median():.2e}; "
        rows.append(_row("nets.detection.bf16.cosine", ",".join(plan["bf16_rules"]),
                         f"{problem.name} {layer}: median max-row |cos(w, g)|", floor,
                         float(g.cos_channel.median()), 0.0, "open", "relative",
                         f"threshold δ/sqrt(L) = {g.thr_channel.iloc[0]:.4f}; {fp_note}"
                         "prediction = final bf16 rounding of w and g only "
                         "(theory.detection.rounding_abs_cosine)"))
    return rows, frames


def _layer_note(by_layer: pd.DataFrame) -> str:
    return "; ".join(f"{r.layer} ({'invariant' if r.scale_invariant else 'not invariant'}) fired "
                     f"{r.fired:.3f}, median cos/thr {r.margin_median:.3g}"
                     for r in by_layer.itertuples())


