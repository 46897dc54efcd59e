"""The tensor sets the step benchmark runs on, with gradients that make the projection fire.

- ``resnet``: the conv/linear/BN tensors of a ResNet-18-like net with one extra 512-channel block
  and a 1000-way classifier (68 tensors, 16.4 M parameters; every conv feeds a BatchNorm). Memory
  bound: an optimizer step streams p, g and the state once or a few times.
- ``small``: 1000 small tensors (250 blocks of a 64×64 weight feeding a norm layer, its 64-wide
  scale and shift, and a 128×16 weight that feeds none; 1.57 M parameters). Dispatch bound: the
  per-tensor overhead dominates.

Gradients are random, except that for every weight that feeds a normalisation layer each output
channel's gradient row is made orthogonal to that row of the weight (``g_r ← g_r − ŵ_r⟨ŵ_r, g_r⟩``),
as backpropagation through a BatchNorm makes it (the loss is invariant to the scale of each
channel; Heo et al., ICLR 2021, §2). AdamP/SGDP's channel-view test then passes and the projection
really runs. ``quick`` shrinks the channel counts (for the smoke test), not the structure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SETS = ("resnet", "small")


@dataclass
class TensorSet:
    name: str
    params: list[Tensor]
    initial: list[Tensor]  # parameter values restored before every timed step
    feeds_norm: list[bool]

    @property
    def numel(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def largest_bytes(self) -> int:
        return max(p.numel() * p.element_size() for p in self.params)

    def reset(self) -> None:
        """Restore the parameters (so that the gradients stay tangential: the test keeps firing)."""
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.initial)

    def describe(self) -> str:
        return f"{self.name}: {len(self.params)} tensors, {self.numel / 1e6:.2f} M parameters"


def resnet_shapes(width: int = 64) -> list[tuple[tuple[int, ...], bool]]:
    """(shape, feeds a norm layer) of a ResNet-18-like net with 5 stages-blocks at 512 channels."""
    out: list[tuple[tuple[int, ...], bool]] = []

    def conv(cin: int, cout: int, k: int) -> None:
        out.extend([((cout, cin, k, k), True), ((cout,), False), ((cout,), False)])

    conv(3, width, 7)
    cin = width
    for mult, blocks in ((1, 2), (2, 2), (4, 2), (8, 3)):
        cout = width * mult
        for _ in range(blocks):
            conv(cin, cout, 3)
            conv(cout, cout, 3)
            if cin != cout:
                conv(cin, cout, 1)
            cin = cout
    out.extend([((1000, cin), False), ((1000,), False)])
    return out


def small_shapes(blocks: int = 250) -> list[tuple[tuple[int, ...], bool]]:
    out: list[tuple[tuple[int, ...], bool]] = []
    for _ in range(blocks):
        out.extend([((64, 64), True), ((64,), False), ((64,), False), ((128, 16), False)])
    return out


def tangential_rows(g: Tensor, w: Tensor) -> Tensor:
    """g with each output-channel row made orthogonal to the same row of w."""
    wr, gr = w.reshape(w.shape[0], -1), g.reshape(g.shape[0], -1)
    w_hat = wr / wr.norm(dim=1, keepdim=True)
    return (gr - w_hat * (w_hat * gr).sum(dim=1, keepdim=True)).reshape(g.shape)


def make_set(name: str, quick: bool = False, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32, seed: int = 0) -> TensorSet:
    """The tensor set ``name`` (see the module docstring) with its gradients in ``p.grad``."""
    if name not in SETS:
        raise ValueError(f"unknown tensor set {name!r}: expected one of {SETS}")
    shapes = (resnet_shapes(16 if quick else 64) if name == "resnet"
              else small_shapes(50 if quick else 250))
    gen = torch.Generator().manual_seed(seed)
    params, initial, feeds = [], [], []
    for shape, norm in shapes:
        w = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(max(1, math.prod(shape[1:])))
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        if norm:
            g = tangential_rows(g, w)
        p = w.to(device=device, dtype=dtype)
        p.grad = g.to(device=device, dtype=dtype)
        params.append(p)
        initial.append(p.detach().clone())
        feeds.append(norm)
    return TensorSet(f"{name}{' (quick)' if quick else ''}", params, initial, feeds)
