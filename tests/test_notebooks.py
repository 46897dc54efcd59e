"""The notebooks run top to bottom in small-size mode, carry no outputs, and tell their story;
the helpers of ``sandbox.notebook`` behave as documented.

Each notebook is executed with nbclient exactly as JupyterLab would run it from ``notebooks/``
(``SANDBOX_NOTEBOOK_SMALL=1``, results into a temporary folder): an exception in any cell fails
the test. No test here asserts on wall-clock time (a busy machine may take several times longer);
``CELL_TIMEOUT_S`` is only a guard against a hung kernel. That a notebook honours the small mode
is checked by what it prints ("SMALL size") and by the sizes it picks (``nb.pick``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ("01_effective_step_size", "02_weight_decay_equilibrium", "03_compare_variants",
            "04_flat_minima", "05_root_free", "06_schedules_corrected_decay")
CELL_TIMEOUT_S = 900  # a hang guard, not a speed requirement


def notebook_path(name: str) -> Path:
    return NOTEBOOKS / f"{name}.ipynb"


def test_the_notebooks_exist():
    found = sorted(p.stem for p in NOTEBOOKS.glob("0*.ipynb"))
    assert found == list(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_notebook_has_no_outputs(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location("strip_outputs", NOTEBOOKS / "strip_outputs.py")
    strip_outputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(strip_outputs)
    nb = nbformat.read(notebook_path(name), as_version=4)
    assert strip_outputs.dirty(nb) == [], f"run `python notebooks/strip_outputs.py` ({name})"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_tells_the_story_in_order(name):
    """Markdown headings: the claim (with a LaTeX formula) before the experiment, then the
    verdict, then what to try next; and the small-size switch is read through sandbox.notebook."""
    nb = nbformat.read(notebook_path(name), as_version=4)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    headings = [line.lower() for text in md for line in text.splitlines() if line.startswith("#")]

    def first(word):
        hits = [i for i, h in enumerate(headings) if word in h]
        assert hits, f"{name}: no heading mentions {word!r}; headings: {headings}"
        return hits[0]

    assert first("claim") < first("experiment") < first("verdict") < first("what to try next")
    assert any("$" in text for text in md), f"{name}: no LaTeX formula in the markdown"
    assert "nb.setup()" in code and ("nb.pick(" in code or "nb.is_small()" in code)


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_executes_in_small_mode(name, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("SANDBOX_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("SANDBOX_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("SANDBOX_NOTEBOOK_THREADS", "1")
    monkeypatch.delenv("SANDBOX_NOTEBOOK_DEVICE", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # the kernel starts in notebooks/ (as `jupyter lab notebooks/` does): make the project
    # importable there even where an editable install predates a package's __init__.py
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    nb = nbformat.read(notebook_path(name), as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name}: no figure was displayed"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "SMALL size" in text, f"{name}: the first cell did not announce the small size"
    verdict_lines = re.findall(r"(\d+) PASS, (\d+) FAIL, (\d+) INCONCLUSIVE, (\d+) REPORTED",
                               text)
    if name != "03_compare_variants":  # 03 ranks rules; the others count verdicts
        assert verdict_lines, f"{name}: no verdict table was shown"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written, f"{name}: nothing was written under SANDBOX_NOTEBOOK_OUT"


# --- helpers of sandbox.notebook ---------------------------------------------------------------

def test_small_mode_switch(monkeypatch):
    from sandbox import notebook as nbk

    monkeypatch.delenv("SANDBOX_NOTEBOOK_SMALL", raising=False)
    assert not nbk.is_small() and nbk.pick(full=10, small=1) == 10
    for value in ("1", "true", "YES", " on "):
        monkeypatch.setenv("SANDBOX_NOTEBOOK_SMALL", value)
        assert nbk.is_small() and nbk.pick(full=10, small=1) == 1
    for value in ("0", "false", "off", ""):
        monkeypatch.setenv("SANDBOX_NOTEBOOK_SMALL", value)
        assert not nbk.is_small()
    monkeypatch.setenv("SANDBOX_NOTEBOOK_SMALL", "smal")
    with pytest.raises(ValueError, match="SANDBOX_NOTEBOOK_SMALL"):
        nbk.is_small()


def test_results_dir_separates_small_runs(monkeypatch, tmp_path):
    from sandbox import notebook as nbk

    monkeypatch.setenv("SANDBOX_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("SANDBOX_NOTEBOOK_SMALL", "1")
    small = nbk.results_dir("demo")
    monkeypatch.setenv("SANDBOX_NOTEBOOK_SMALL", "0")
    full = nbk.results_dir("demo")
    assert small == tmp_path / "demo" / "small" and full == tmp_path / "demo"
    assert small.is_dir() and full.is_dir()
    with pytest.raises(ValueError, match="folder name"):
        nbk.results_dir("../escape")


def test_project_root_found_from_notebooks_folder(monkeypatch):
    from sandbox import notebook as nbk

    monkeypatch.chdir(NOTEBOOKS)
    assert nbk.project_root() == ROOT
    assert nbk.project_path("results", "verify") == ROOT / "results" / "verify"


def test_device_refuses_unknown_or_missing(monkeypatch):
    import torch

    from sandbox import notebook as nbk

    monkeypatch.setenv("SANDBOX_NOTEBOOK_DEVICE", "tpu")
    with pytest.raises(ValueError, match="tpu"):
        nbk.device()
    monkeypatch.setenv("SANDBOX_NOTEBOOK_DEVICE", "cpu")
    assert nbk.device() == "cpu"
    if not torch.cuda.is_available():
        monkeypatch.setenv("SANDBOX_NOTEBOOK_DEVICE", "cuda")
        with pytest.raises(ValueError, match="no CUDA"):
            nbk.device()


def test_rule_colours_are_fixed_and_paired():
    from sandbox import notebook as nbk

    a = nbk.rule_colors(["adamp", "sgd"])
    b = nbk.rule_colors(["sgd", "adamw", "adamp", "sgdp"])
    assert a["adamp"] == b["adamp"] and a["sgd"] == b["sgd"]  # independent of the other rules
    assert len({b[r] for r in b}) == 4
    shades = nbk.label_colors(["x", "y", "z"], ["sgd", "sgd", "adam"])
    assert shades["x"] == b["sgd"] and shades["y"] != shades["x"]


def test_panel_hyperparameters_map_controls_to_each_rule():
    from sandbox.notebook.effective_step_panel import panel_hyperparameters

    assert panel_hyperparameters("sgd", 0.1, 0.9, 0.0, False)["momentum"] == 0.9
    assert panel_hyperparameters("adamw", 0.01, 0.8, 0.1, True)["betas"] == (0.8, 0.999)
    assert panel_hyperparameters("adai", 0.1, 0.9, 0.0, False)["betas"][0] == pytest.approx(0.1)
    assert panel_hyperparameters("rfadamw", 1e-3, 0.9, 0.0, False)["batch_size"] == 1
    with pytest.raises(ValueError, match="momentum"):
        panel_hyperparameters("sgd", 0.1, 1.0, 0.0, False)
    with pytest.raises(ValueError, match="lr"):
        panel_hyperparameters("sgd", 0.0, 0.5, 0.0, False)


def test_panel_reruns_once_per_change_and_tracks_theory():
    """A control change re-runs the toy once; a rule change resets lr and projection first.
    Projected SGD with momentum and no decay: the late Δ_t sits on theory's curve (an SGDP-type
    run at d = 16 with 32 replicas: within 15% after 300 steps)."""
    pytest.importorskip("ipywidgets")
    from sandbox.notebook.effective_step_panel import EffectiveStepPanel, late_ratios, typical_lr

    panel = EffectiveStepPanel(steps=300, replicas=32, d=16, rule="sgd", momentum=0.9)
    calls = []
    original = panel.update
    panel.update = lambda: calls.append(1) or original()
    panel.project.value = True
    assert len(calls) == 1
    assert abs(late_ratios(panel.table)["delta"] - 1) < 0.15
    panel.rule.value = "adamp"
    assert len(calls) == 2 and panel.project.value is True
    assert panel.lr.value == pytest.approx(typical_lr("adamp"))
    table = panel.set(rule="adamw", weight_decay=0.1)
    assert len(calls) == 3 and panel.project.value is False
    assert np.isfinite(panel.prediction.delta_star)
    assert set(table["quantity"]) == {"norm", "delta"}


def test_schedule_panel_builds_and_draws_headless():
    """Notebook 06's panel without a widget frontend: one update runs the toy and draws into the
    Image widget; the prediction lies above the measurement within the validated tolerance; a
    rule change resets λ and β and re-runs once; a rule the theory does not cover is drawn
    measured only, with the reason in the status line."""
    pytest.importorskip("ipywidgets")
    from sandbox.notebook.schedule_panel import SchedulePanel, rule_setting

    panel = SchedulePanel(steps=400, replicas=32, d=64, rule="adamw", kind="cosine")
    run = panel.update()
    assert bytes(panel.figure.value[:8]) == b"\x89PNG\r\n\x1a\n", "no figure was drawn"
    assert run["predicted"] is not None, panel.status.value
    m = run["measured"].query("quantity == 'norm' and step >= 30").set_index("step")["rms"]
    p = run["predicted"].query("quantity == 'norm'").set_index("step")["predicted"]
    assert np.max(np.abs(m / p.loc[m.index] - 1)) < 0.05
    calls = []
    original = panel.update
    panel.update = lambda: calls.append(1) or original()
    panel.weight_decay.value = 0.1
    panel.rule.value = "sgdc"
    assert len(calls) == 2 and panel.weight_decay.value == rule_setting("sgdc")["weight_decay"]
    assert panel.run["hp"]["momentum"] == pytest.approx(0.9) and panel.run["predicted"] is not None
    panel.set(rule="rvadamw")
    assert panel.run["predicted"] is None and "rotation" in panel.status.value
    with pytest.raises(ValueError, match="unknown control"):
        panel.set(lr=0.1)


def test_schedule_figures_keep_text_readable():
    from sandbox.notebook import schedule_panel as sp
    from sandbox.notebook import schedule_views as sv
    from sandbox.plotting import text_problems

    runs = sp.toy_runs(["adamw", "adamc", "sgd"], steps=200, replicas=16)
    assert text_problems(sv.draw_toy_comparison(runs)) == []
    assert text_problems(sp.draw_schedule_panel(runs["adamc"], "adamc", title="adamc")) == []


def test_effective_step_prediction_regimes():
    from sandbox.notebook.toy_runs import predict_effective_step

    t = np.arange(0, 1000)
    sgd = predict_effective_step("sgd", {"lr": 0.1, "momentum": 0.9}, t, d=64)
    late = sgd.delta[-1] * np.sqrt(2 * 19 * t[-1])   # → 1/sqrt(2 M t), M = 19
    assert late == pytest.approx(1.0, rel=0.05) and sgd.asymptote is not None
    adamw = predict_effective_step("adamw", {"lr": 0.01, "weight_decay": 0.1}, t, d=64)
    assert adamw.delta_star == pytest.approx(np.sqrt(2 * 0.01 * 0.1 / 19), rel=1e-9)
    rf = predict_effective_step("rfadamw", {"lr": 1e-3, "batch_size": 1}, t, d=64)
    assert np.nanmax(rf.delta) - np.nanmin(rf.delta) < 1e-12 * np.nanmax(rf.delta)  # constant
    assert np.isfinite(rf.crossover_radius)
    l2 = predict_effective_step("adam", {"lr": 0.01, "weight_decay": 0.01}, t, d=64)
    assert np.isnan(l2.delta).all() and np.isfinite(l2.delta_star)


def test_bf16_rounding_model_matches_torch():
    import torch

    from theory.lowprecision import bf16_ema_trace, ema_can_decrease, round_bf16

    x = np.random.default_rng(0).standard_normal(20000).astype(np.float32) * 1e3
    assert np.array_equal(round_bf16(x), torch.tensor(x).bfloat16().float().numpy())
    assert ema_can_decrease(0.999) == "never" and ema_can_decrease(0.99) == "yes"
    trace = bf16_ema_trace(0.999, 300, elements=512)
    assert np.all(np.diff(trace) >= 0)  # the mean of a never-decreasing EMA never decreases
    v = torch.ones(512, dtype=torch.bfloat16)
    before = v.clone()
    g = torch.randn(512, generator=torch.Generator().manual_seed(1)).bfloat16() * 0.1
    v.mul_(0.999).addcmul_(g, g, value=0.001)  # g² ≪ v: the exact EMA would decrease every v
    assert bool((v >= before).all())
