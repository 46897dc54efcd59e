"""The native stacked forward defers to vmap wherever it would differ (regressions found in
review):

3. BatchNorm ran in ``StackedModels.training`` mode, not in each layer's own mode as
   ``functional_call`` (the vmap engine) does: models passed in eval mode, or a frozen
   BatchNorm, gave other outputs than vmap and the models themselves.
4. A BatchNorm whose ``track_running_stats`` was switched off after construction (buffers kept)
   had its buffers updated; nn (and vmap) leaves them.
5. Layer orders the native layouts cannot express (a Linear on a non-flat input, a MaxPool1d
   after a Linear, a Linear after a Conv1d) were claimed as native and crashed with
   engine='auto'; vmap runs them.
6. A parametrized layer (``weight_norm``) crashed the native engine with a KeyError; a forward
   hook on a layer was silently skipped.
"""
import pytest
import torch
from torch import nn

from sandbox.problems.models import NormNet
from sandbox.training import StackedModels


# --- 3-5. native stacked forward against vmap ------------------------------------------------------
K = 3


def _pair(build):
    models = [build(s) for s in range(K)]
    return StackedModels(models, engine="auto"), StackedModels(models, engine="vmap"), models


def _bn_net(seed, prepare=None):
    torch.manual_seed(seed)
    m = NormNet(nn.Sequential(nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(),
                              nn.Linear(6, 2)), (4,), [0]).double()
    with torch.no_grad():  # running statistics away from their initial values
        m(torch.randn(32, 4, dtype=torch.float64) * 3 + 1)
    if prepare:
        prepare(m)
    return m


@pytest.mark.parametrize("prepare", [lambda m: m.eval(), lambda m: m.body[1].eval()],
                         ids=["models-in-eval", "frozen-batchnorm"])
def test_native_stack_runs_each_layer_in_its_own_mode(prepare):
    native, vmapped, models = _pair(lambda s: _bn_net(s, prepare))
    assert native.engine == "native"
    x = torch.randn(K, 8, 4, dtype=torch.float64)
    out = native(x)
    torch.testing.assert_close(out, vmapped(x), rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(out, torch.stack([m(x[k]) for k, m in enumerate(models)]),
                                   rtol=1e-10, atol=1e-12)
    for name in native.buffers:
        torch.testing.assert_close(native.buffers[name], vmapped.buffers[name], rtol=1e-10, atol=1e-12)


def test_native_stack_leaves_buffers_of_a_batchnorm_not_tracking():
    def untracked(m):
        m.body[1].track_running_stats = False  # buffers kept, no longer updated (nn's semantics)

    native, vmapped, _ = _pair(lambda s: _bn_net(s, untracked))
    assert native.engine == "native"
    before = {n: b.clone() for n, b in native.buffers.items()}
    x = torch.randn(K, 8, 4, dtype=torch.float64)
    torch.testing.assert_close(native(x), vmapped(x), rtol=1e-10, atol=1e-12)
    for name in before:
        assert torch.equal(native.buffers[name], before[name]), name


def _net(body, shape):
    def build(seed):
        torch.manual_seed(seed)
        return NormNet(body(), shape, [0]).double()
    return build


@pytest.mark.parametrize("body,shape,x_shape", [
    (lambda: nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2)), (2, 2), (K, 8, 4)),
    (lambda: nn.Sequential(nn.Linear(4, 6), nn.MaxPool1d(2), nn.Linear(3, 2)), (4,), (K, 8, 4)),
    (lambda: nn.Sequential(nn.Conv1d(2, 4, 3), nn.Linear(7, 3), nn.Flatten(), nn.Linear(12, 2)),
     (2, 9), (K, 5, 18)),
], ids=["linear-on-2d-input", "maxpool-after-linear", "linear-after-conv"])
def test_layer_orders_outside_the_native_layouts_run_on_vmap(body, shape, x_shape):
    stack, _, models = _pair(_net(body, shape))
    assert stack.engine == "vmap"
    x = torch.randn(x_shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(stack(x), torch.stack([m(x[k]) for k, m in enumerate(models)]),
                                   rtol=1e-10, atol=1e-12)


# --- 6. layers the native forward would not call as modules ----------------------------------------
def _weight_normed(seed):
    torch.manual_seed(seed)
    return NormNet(nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(4, 6)), nn.ReLU(),
                                 nn.Linear(6, 2)), (4,), [0]).double()


def _hooked(seed):
    torch.manual_seed(seed)
    m = NormNet(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)), (4,), [0]).double()
    m.body[1].register_forward_hook(lambda mod, inp, out: 2 * out)
    return m


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap's weight_norm fallback
@pytest.mark.parametrize("build", [_weight_normed, _hooked], ids=["parametrized-layer", "forward-hook"])
def test_parametrized_or_hooked_layers_run_on_vmap(build):
    stack, _, models = _pair(build)
    assert stack.engine == "vmap"
    x = torch.randn(K, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(stack(x), torch.stack([m(x[k]) for k, m in enumerate(models)]),
                                   rtol=1e-10, atol=1e-12)


def test_global_module_hooks_make_the_native_stack_defer_to_vmap():
    """``register_module_forward_hook`` applies to every module call; the native forward calls
    none, so while such a hook exists the stack runs on vmap (and natively again after)."""
    def build(seed):
        torch.manual_seed(seed)
        return NormNet(nn.Sequential(nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(),
                                     nn.Linear(6, 2)), (4,), [0]).double()

    models = [build(s) for s in range(K)]
    native, vmapped = StackedModels(models), StackedModels(models, engine="vmap")
    native.eval(), vmapped.eval()
    x = torch.randn(K, 5, 4, dtype=torch.float64)
    plain = native(x)

    def double_linear_outputs(module, args, out):
        return out * 2 if isinstance(module, nn.Linear) else out

    handle = torch.nn.modules.module.register_module_forward_hook(double_linear_outputs)
    try:
        hooked = native(x)
        torch.testing.assert_close(hooked, vmapped(x), rtol=1e-12, atol=1e-12)
        assert not torch.allclose(hooked, plain)
    finally:
        handle.remove()
    torch.testing.assert_close(native(x), plain, rtol=0, atol=0)
