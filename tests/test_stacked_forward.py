"""The native stacked forward (one kernel per layer over all replicas) equals vmap's, in float64:
outputs, gradients and BatchNorm buffers, in training and evaluation, on every named problem's
model and on a model that reaches every layer branch; unsupported models fall back to vmap."""
import pytest
import torch
from torch import nn

import sandbox
from sandbox.problems import get_problem
from sandbox.problems.fashion_mnist import DataMissingError
from sandbox.problems.models import NormNet
from sandbox.training import StackedModels

K = 3
TOL = dict(rtol=1e-10, atol=1e-12)  # outputs of one forward pass: summation order only
# Parameters and gradients after optimizer steps, per tensor and replica: ‖native − vmap‖ ≤
# RTOL·‖vmap‖. Element-wise checks are meaningless where a weight's true gradient is exactly 0 (a
# pixel constant over a batch feeding a BatchNorm'd unit): there the gradient is round-off
# (~1e-17), which momentum and the projection's normalisation carry along (see
# tests/test_stacked_seeds.py).
RTOL = 1e-9


def _close(a, b, what):
    err = (a.detach() - b.detach()).flatten(1).norm(dim=1)
    ref = b.detach().flatten(1).norm(dim=1)
    assert bool((err <= RTOL * ref + 1e-15).all()), f"{what}: relative error {(err / ref).tolist()}"


def _pair(build, seeds=range(K)):
    """The same K models stacked twice: once per engine."""
    torch.manual_seed(0)
    models = [build(s) for s in seeds]
    return StackedModels(models, engine="native"), StackedModels(models, engine="vmap")


def _assert_same(a: StackedModels, b: StackedModels, grads=True):
    for name in a.params:
        _close(a.params[name], b.params[name], name)
        if grads:
            assert a.params[name].grad is not None, name
            _close(a.params[name].grad, b.params[name].grad, f"grad {name}")
    for name in a.buffers:
        if a.buffers[name].is_floating_point():
            _close(a.buffers[name], b.buffers[name], name)
        else:  # num_batches_tracked
            assert torch.equal(a.buffers[name], b.buffers[name]), name


def _train_and_compare(native, vmapped, x, y, loss, steps=3):
    """Steps of sgdp on both stacks (its projection tests each replica's rows), comparing after
    each. (An Adam-type rule would turn exactly-zero gradients' round-off into lr-sized steps
    in the small models below, whose dead units make such zeros common.)"""
    opts = [sandbox.create("sgdp", s.param_groups(), lr=0.1, momentum=0.9, weight_decay=1e-2)
            for s in (native, vmapped)]
    for t in range(steps):
        idx = torch.randint(0, len(y), (K, 16), generator=torch.Generator().manual_seed(t))
        for s, o in zip((native, vmapped), opts):
            o.zero_grad()
            loss(s(x[idx]), y[idx]).sum().backward()
        _assert_same(native, vmapped)
        for o in opts:
            o.step()
    _assert_same(native, vmapped, grads=False)
    for s in (native, vmapped):
        s.eval()
    _close(native(x[:20], shared=True), vmapped(x[:20], shared=True), "eval logits (shared)")
    idx = torch.arange(K * 8).reshape(K, 8)
    _close(native(x[idx]), vmapped(x[idx]), "eval logits")
    before = {n: b.clone() for n, b in native.buffers.items()}
    native(x[idx])
    assert all(torch.equal(before[n], native.buffers[n]) for n in before), "eval must not update buffers"


def _problem(name, **options):
    try:
        return get_problem(name, dtype=torch.float64, **options)
    except DataMissingError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", ["digits-bnmlp", "mnist1d-bncnn", "teacher-student-bn",
                                  "fmnist-bncnn"])
def test_named_problems_run_native_and_match_vmap(name):
    problem = _problem(name)
    native, vmapped = _pair(problem.build)
    assert native.engine == "native" and vmapped.engine == "vmap"
    _train_and_compare(native, vmapped, *problem.train, problem.replica_losses)


def test_layer_norm_models_run_on_vmap():
    """LayerNorm is left to vmap (measured faster there; see sandbox.training.stacked_forward)."""
    problem = _problem("teacher-student")
    assert StackedModels([problem.build(s) for s in range(2)]).engine == "vmap"


def _every_branch(seed: int) -> NormNet:
    """Conv2d with groups and bias → BatchNorm2d without affine → MaxPool2d → Flatten → Linear
    with bias → BatchNorm1d → ReLU → Linear without bias → BatchNorm1d without running statistics
    → Identity → Linear."""
    torch.manual_seed(seed)
    body = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, groups=2, bias=True), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 12), nn.BatchNorm1d(12), nn.ReLU(),
        nn.Linear(12, 8, bias=False), nn.BatchNorm1d(8, track_running_stats=False), nn.Identity(),
        nn.Linear(8, 5))
    return NormNet(body, (2, 6, 6), [0]).double()


def _ce(logits, y):
    return nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)


def test_every_layer_branch_matches_vmap():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 72, generator=g, dtype=torch.float64), torch.randint(0, 5, (64,), generator=g)
    native, vmapped = _pair(_every_branch)
    assert native.engine == "native"
    _train_and_compare(native, vmapped, x, y, _ce)


def test_conv1d_channels_layout_matches_vmap():
    def build(seed):
        torch.manual_seed(seed)
        body = nn.Sequential(nn.Conv1d(3, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(6),
                             nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(6 * 5, 4))
        return NormNet(body, (3, 20), [0]).double()

    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(40, 60, generator=g, dtype=torch.float64), torch.randint(0, 4, (40,), generator=g)
    native, vmapped = _pair(build)
    assert native.engine == "native"
    _train_and_compare(native, vmapped, x, y, _ce)


def _with(layer):
    def build(seed):
        torch.manual_seed(seed)
        return NormNet(nn.Sequential(nn.Linear(4, 6, bias=False), layer(), nn.Linear(6, 2)), (4,), [0])
    return build


@pytest.mark.parametrize("layer", [lambda: nn.Dropout(0.1), lambda: nn.BatchNorm1d(6, momentum=None),
                                   lambda: nn.GELU(), lambda: nn.LayerNorm(6)])
def test_unsupported_layers_fall_back_to_vmap(layer):
    stack = StackedModels([_with(layer)(s) for s in range(2)])
    assert stack.engine == "vmap"
    with pytest.raises(ValueError, match="engine='native' does not support NormNet"):
        StackedModels([_with(layer)(s) for s in range(2)], engine="native")


def test_a_model_that_is_not_a_normnet_uses_vmap():
    stack = StackedModels([nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)) for _ in range(2)])
    assert stack.engine == "vmap"
    assert stack(torch.randn(2, 5, 3)).shape == (2, 5, 2)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="invalid engine='jit'"):
        StackedModels([_with(nn.ReLU)(0)], engine="jit")
