"""The projection's row statistics (sandbox.optim.fast.projection_form.row_stats) against plain torch,
written into strided rows of a stats table, float32 and float64."""
import pytest
import torch

from sandbox.optim.fast.projection_form import row_stats


@pytest.mark.parametrize("length", [1, 3, 64, 147, 576])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_stats_match_plain_torch(length, dtype):
    gen = torch.Generator().manual_seed(length)
    x, y, z = (torch.randn(37, length, generator=gen, dtype=torch.float64) for _ in range(3))
    table = torch.full((4, 40), float("nan"), dtype=dtype)
    row_stats(x.to(dtype), y.to(dtype), z.to(dtype), table[:, 2:39])
    expected = torch.stack([x.norm(dim=1), y.norm(dim=1), (x * y).sum(1), (x * z).sum(1)])
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    bound = torch.stack([x.norm(dim=1), y.norm(dim=1), (x * y).abs().sum(1), (x * z).abs().sum(1)])
    assert ((table[:, 2:39].double() - expected).abs() <= tol * bound).all()
    assert table[:, [0, 1, 39]].isnan().all()  # nothing written outside the given columns
