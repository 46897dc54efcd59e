"""N replicas in one tensor (replica_dims) give the N separate runs, for every rule."""
import pytest
import torch

import sandbox

from rule_kwargs import make

ALL = sandbox.available()
N = 5


def _problem(seed=0):
    """Initial weights (a conv-like tensor, a matrix, a vector) and a gradient stream whose scale
    differs per replica, with steps where some replicas get tangential gradients (projection fires)
    in the channel view and some in the layer view."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3, 2), (5, 6), (7,)]
    w0 = [torch.randn((N,) + s, generator=g, dtype=torch.float64) for s in shapes]
    scale = torch.logspace(-1, 1, N, dtype=torch.float64)

    def grads(ws, t):
        out = []
        for w in ws:
            x = torch.randn(w.shape, generator=g, dtype=torch.float64)
            x *= scale.reshape((N,) + (1,) * (w.ndim - 1))
            if w.ndim > 2 and t % 3 == 0:  # tangential per output channel: channel view fires
                r, xr = w.reshape(N, w.shape[1], -1), x.view(N, w.shape[1], -1)
                xr -= r * (r * xr).sum(-1, keepdim=True) / (r * r).sum(-1, keepdim=True)
            if w.ndim == 3 and t % 3 == 1:  # tangential as a whole: layer view fires
                r, xr = w.reshape(N, -1), x.view(N, -1)
                xr -= r * (r * xr).sum(-1, keepdim=True) / (r * r).sum(-1, keepdim=True)
            out.append(x)
        return out

    return w0, grads


@pytest.mark.parametrize("name", ALL)
def test_replicas_equal_separate_runs(name):
    w0, grads = _problem()
    stacked = [w.clone() for w in w0]
    separate = [[w[i].clone() for w in w0] for i in range(N)]
    opt = make(name, [{"params": stacked, "replica_dims": 1}], weight_decay=0.02, project=True)
    opts = [make(name, ws, weight_decay=0.02, project=True) for ws in separate]
    fired = set()
    for t in range(30):
        gs = grads(stacked, t)
        for w, g in zip(stacked, gs):
            w.grad = g
        for i, ws in enumerate(separate):
            for w, g in zip(ws, gs):
                w.grad = g[i].clone()
        opt.step()
        for o in opts:
            o.step()
        fired |= set(opt.last_info[stacked[0]]["projection"].tolist())
    assert {1, 2} <= fired, "the test must make both views fire"
    for i in range(N):
        for j, w in enumerate(stacked):
            torch.testing.assert_close(w[i], separate[i][j], rtol=1e-12, atol=1e-14)
            for k, v in opt.state[w].items():
                if k != "step":
                    torch.testing.assert_close(v[i], opts[i].state[separate[i][j]][k],
                                               rtol=1e-12, atol=1e-14, msg=f"state {k}")


def test_projection_verdict_is_per_replica():
    # Replicas 0 and 2 get a clear radial component (|cos| ≈ 0.7); for a single row a purely random
    # gradient passes the layer-view test |cos| < δ/sqrt(L) with probability P(|z| < δ) ≈ 8%.
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, 5, dtype=torch.float64, generator=gen)
    g = torch.randn(3, 4, 5, dtype=torch.float64, generator=gen) + w
    r = w[1]
    g[1] = g[1] - r * (r * g[1]).sum(-1, keepdim=True) / (r * r).sum(-1, keepdim=True)
    w.grad = g
    opt = sandbox.create("adamp", [{"params": [w], "replica_dims": 1}])
    opt.step()
    assert opt.last_info[w]["projection"].tolist() == [0, 1, 0]


def test_adai_refuses_mixed_replica_shapes():
    a, b = torch.randn(4, 3), torch.randn(5, 3)
    a.grad, b.grad = torch.randn(4, 3), torch.randn(5, 3)
    opt = sandbox.create("adai", [{"params": [a], "replica_dims": 1}, {"params": [b], "replica_dims": 1}],
                         lr=0.1)
    with pytest.raises(ValueError, match="same replica shape"):
        opt.step()
