"""The registry: names, metadata, close-match errors, and `python -m sandbox list`."""
import subprocess
import sys

import pytest
import torch

import sandbox

from rule_kwargs import make

NAMES = ["sgd", "adam", "adamw", "sgdp", "adamp", "adai", "adaiw", "rfadamw", "rfrmsprop",
         "adaip", "adaiwp", "rfadamwp", "rfrmspropp"]
HOMOGENEITY = {"sgd": 1, "sgdp": 1, "adam": 0, "adamw": 0, "adamp": 0, "adai": 1, "adaiw": 1,
               "rfadamw": -1, "rfrmsprop": -1}


def test_every_rule_has_a_row_in_the_rule_table():
    """A rule registered without a row in tests/rule_table.py would escape the generic tests."""
    from rule_table import TABLE

    missing = [r for r in sandbox.available() if r not in TABLE]
    assert not missing, f"add rows to tests/rule_table.py for {missing}"


def test_every_required_name_is_registered():
    assert set(NAMES) <= set(sandbox.available())


@pytest.mark.parametrize("name", NAMES)
def test_info_has_paper_defaults_provenance_stages(name):
    spec = sandbox.info(name)
    assert spec.paper and spec.defaults and set(spec.provenance) == set(spec.defaults)
    assert all(spec.provenance.values()), "every default needs a source"
    stages = [s.name for s in spec.stages({"lr": 0.1, "batch_size": 8})]
    assert stages[-1] == "scale_by_lr"
    assert ("radial_projection" in stages) == spec.projected
    base = spec.base or name
    assert spec.homogeneity == HOMOGENEITY.get(base, HOMOGENEITY.get(name.rstrip("p")))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "adai", "adaiw", "rfadamw", "rfrmsprop"])
def test_project_option_adds_exactly_one_projection_stage(name):
    off = [s.name for s in sandbox.info(name).stages({"lr": 1, "batch_size": 8})]
    on = [s.name for s in sandbox.info(name).stages({"lr": 1, "batch_size": 8, "project": True})]
    assert "radial_projection" not in off
    assert on.count("radial_projection") == 1 and len(on) == len(off) + 1
    # the projection comes after the direction is formed and before any decoupled decay
    assert on.index("radial_projection") > max(i for i, s in enumerate(on)
                                               if s not in ("add_decayed_weights", "radial_projection",
                                                            "scale_by_lr")) \
        or sandbox.info(name).decay == "coupled"


def test_projected_names_equal_their_base_with_project_true():
    torch.manual_seed(0)
    for projected, base in [("adaip", "adai"), ("rfadamwp", "rfadamw"), ("adamp", "adamw")]:
        w0 = torch.randn(4, 3, dtype=torch.float64)
        ws = [w0.clone(), w0.clone()]
        g = torch.randn(4, 3, dtype=torch.float64)
        opts = [make(projected, [ws[0]], weight_decay=0.1),
                make(base, [ws[1]], project=True, weight_decay=0.1)]
        for w, o in zip(ws, opts):
            for _ in range(5):
                w.grad = g - w * (w * g).sum() / (w * w).sum()  # tangential: fires in layer view
                o.step()
        torch.testing.assert_close(ws[0], ws[1], rtol=0, atol=0)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"'adamw'") as e:
        sandbox.create("adamww", [torch.zeros(2, requires_grad=True)])
    assert "available" in str(e.value)
    with pytest.raises(ValueError, match="sgdp"):
        sandbox.info("sgpd")


def test_create_returns_a_torch_optimizer():
    opt = make("adamp", [torch.zeros(2, 2, requires_grad=True)])
    assert isinstance(opt, torch.optim.Optimizer)


def test_cli_list_shows_every_rule_with_paper_and_defaults():
    out = subprocess.run([sys.executable, "-m", "sandbox", "list"], capture_output=True, text=True,
                         check=True).stdout
    for name in NAMES:
        assert f"\n{name} " in "\n" + out
    assert out.count("paper:") == len(sandbox.available())
    assert "Heo et al." in out and "delta=0.1" in out and "betas=(0.1, 0.99)" in out
