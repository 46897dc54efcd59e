"""A user's own rule, defined and registered in this one file, as the README shows.

Lion (Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023) as a user
would add it: one new stage and one ``register`` call, no file of the package touched. The rule
then has ``info``, derived traits, a projected form, drop-in behaviour and the verify claims its
traits select.
"""
import math

import pytest
import torch

import sandbox
from sandbox.optim import hyper as H
from sandbox.optim.registry import RuleSpec, register, unregister
from sandbox.optim.stages import Context, Stage, StageTraits, add_decayed_weights, chain, radial_projection, scale_by_lr
from sandbox.optim.traits import rule_traits

LION = "Chen et al., 'Symbolic Discovery of Optimization Algorithms', NeurIPS 2023"


# --- the user's file: one stage and one rule ----------------------------------------------------
class scale_by_lion(Stage):
    r"""Lion's direction: c = β1·m + (1−β1)·u, d = sign(c), then m ← β2·m + (1−β2)·u."""

    name = "scale_by_lion"
    hypers = (H.betas((0.9, 0.99), LION),)
    traits = StageTraits(degree=(0.0, 0.0), momentum="ema", beta=lambda hp: float(hp["betas"][0]))
    state = {"exp_avg": "the EMA m_t"}

    def update(self, u, ctx: Context):
        beta1, beta2 = ctx.hp["betas"]
        m = ctx.state_tensor("exp_avg")
        d = torch.sign(beta1 * m + (1.0 - beta1) * u)
        m.mul_(beta2).add_(u, alpha=1.0 - beta2)
        return d


def _my_lion(hp):
    return chain(scale_by_lion(), radial_projection("proj_eps") if hp["project"] else None,
                 add_decayed_weights(), scale_by_lr())


def register_my_lion(name="my_lion", project=False):
    return register(RuleSpec(
        name=name, summary="Lion (sign of an interpolated momentum)", paper=LION, build=_my_lion,
        flags=(H.flag("project", project, "radial projection", "Heo et al., ICLR 2021",
                      structural=True),),
        defaults_from={"lr": (1e-4, LION), "weight_decay": (0.0, LION),
                       "delta": (0.1, "adamp 0.3.0"), "wd_ratio": (0.1, "adamp 0.3.0"),
                       "proj_eps": (1e-8, "adamp 0.3.0"), "project_momentum": (False, "sandbox")},
    ))
# --- end of the user's file ---------------------------------------------------------------------


@pytest.fixture
def my_lion():
    register_my_lion()
    register_my_lion("my_lionp", project=True)
    yield "my_lion"
    unregister("my_lion")
    unregister("my_lionp")


def test_info_and_traits_are_derived_from_the_chain(my_lion):
    spec = sandbox.info(my_lion)
    assert my_lion in sandbox.available()
    assert spec.defaults["lr"] == 1e-4 and spec.defaults["betas"] == (0.9, 0.99)
    assert spec.provenance["betas"] == LION and all(spec.provenance.values())
    assert (spec.homogeneity, spec.momentum_kind, spec.decay, spec.projected) == (0, "ema", "decoupled", False)
    assert sandbox.info("my_lionp").projected
    tr = rule_traits(my_lion, betas=(0.8, 0.99))
    assert (tr.homogeneity, tr.momentum, tr.momentum_kind, tr.decay) == (0, 0.8, "ema", "decoupled")


def test_a_step_is_lions_and_the_rule_is_drop_in(my_lion):
    torch.manual_seed(0)
    w0 = torch.randn(5, 3, dtype=torch.float64)
    w = w0.clone().requires_grad_(True)
    opt = sandbox.create(my_lion, [w], lr=0.01, weight_decay=0.1, betas=(0.9, 0.99))
    m = torch.zeros_like(w0)
    ref = w0.clone()
    for _ in range(4):
        g = torch.randn_like(w0)
        w.grad = g.clone()
        opt.step()
        c = 0.9 * m + 0.1 * g
        ref = ref * (1 - 0.01 * 0.1) - 0.01 * torch.sign(c)
        m = 0.99 * m + 0.01 * g
    torch.testing.assert_close(w.detach(), ref, rtol=0, atol=1e-15)
    torch.testing.assert_close(opt.state[w]["exp_avg"], m, rtol=0, atol=1e-15)
    # maximize, the non-finite refusal and a state_dict round trip come from the adapter
    w2 = w0.clone().requires_grad_(True)
    o2 = sandbox.create(my_lion, [w2], lr=0.01, maximize=True)
    w2.grad = torch.ones_like(w0)
    o2.step()
    torch.testing.assert_close(w2.detach(), w0 + 0.01)
    w2.grad = torch.full_like(w0, math.nan)
    with pytest.raises(sandbox.NonFiniteGradientError):
        o2.step()
    o3 = sandbox.create(my_lion, [w2], lr=0.01)
    o3.load_state_dict(o2.state_dict())
    assert torch.equal(o3.state[w2]["exp_avg"], o2.state[w2]["exp_avg"])


def test_the_projected_form_projects(my_lion):
    torch.manual_seed(1)
    w = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    opt = sandbox.create("my_lionp", [w], lr=0.01)
    g = torch.randn(6, 4, dtype=torch.float64)
    w_hat = w.detach() / w.detach().norm(dim=1, keepdim=True)
    w.grad = g - w_hat * (w_hat * g).sum(1, keepdim=True)  # tangential row by row
    opt.step()
    assert int(opt.last_info[w]["projection"]) == 1


def test_verify_claims_select_a_user_rule_by_its_traits(my_lion):
    """A sign update has Adam's traits but not its update size: not modelled, so verify lists it
    as not covered instead of holding it to AdamW's predictions; a user's chain of modelled stages
    (here heavy ball + projection + decoupled decay) gets the claims its traits select."""
    from sandbox.optim.stages import heavy_ball
    from sandbox.verify.applicability import rules_where, uncovered_rules

    assert my_lion not in rules_where(lambda s: True)
    assert uncovered_rules()[my_lion] == ["scale_by_lion"]
    register(RuleSpec(
        name="my_sgdw", summary="heavy ball, projection, decoupled decay", paper="test",
        build=lambda hp: chain(heavy_ball("momentum_buffer", first="zeros"), radial_projection(),
                               add_decayed_weights(), scale_by_lr()),
        defaults_from={"lr": (0.1, "test"), "momentum": (0.9, "test"), "dampening": (0.0, "test"),
                       "nesterov": (False, "test"), "weight_decay": (0.0, "test"),
                       "delta": (0.1, "adamp 0.3.0"), "wd_ratio": (0.1, "adamp 0.3.0"),
                       "proj_eps": (1e-8, "adamp 0.3.0"), "project_momentum": (True, "test")}))
    try:
        assert "my_sgdw" in rules_where(lambda s: s.projected and s.homogeneity == 1
                                        and s.momentum_kind == "heavy_ball")
        assert "my_sgdw" not in uncovered_rules()
        tr = rule_traits("my_sgdw")
        assert (tr.projected, tr.project_buffer, tr.decay) == (True, True, "decoupled")
    finally:
        unregister("my_sgdw")


def test_an_undeclared_stage_is_refused():
    class bare(Stage):
        name = "bare"

        def update(self, u, ctx):
            return u

    with pytest.raises(TypeError, match="stage 'bare'.*declares no traits"):
        register(RuleSpec(name="bare_rule", summary="", paper="x",
                          build=lambda hp: chain(bare(), scale_by_lr()),
                          defaults_from={"lr": (0.1, "test")}))
    assert "bare_rule" not in sandbox.available()


def test_a_restated_default_no_stage_reads_is_refused():
    with pytest.raises(ValueError, match="restates defaults of \\['momentum'\\]"):
        register(RuleSpec(name="typo_rule", summary="", paper="x",
                          build=lambda hp: chain(scale_by_lr()),
                          defaults_from={"lr": (0.1, "test"), "momentum": (0.9, "test")}))
    with pytest.raises(ValueError, match="no source for the default of \\['lr'\\]"):
        register(RuleSpec(name="nosource_rule", summary="", paper="x",
                          build=lambda hp: chain(scale_by_lr())))


def test_the_readme_example_runs_as_written():
    """The README's "Define your own rule" block, executed as a user would paste it."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## Define your own rule"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    model = torch.nn.Linear(4, 3)
    try:
        exec(block, {"model": model})
        spec = sandbox.info("my_lion")
        assert (spec.homogeneity, spec.momentum_kind, spec.decay) == (0, "ema", "decoupled")
    finally:
        unregister("my_lion")
