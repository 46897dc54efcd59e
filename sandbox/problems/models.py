"""Small normalised networks: MLPs with BatchNorm/LayerNorm and 1-D/2-D CNNs with BatchNorm.

Every linear/conv layer that feeds a normalisation has no bias, so its weight w is
scale-invariant: Norm(c·Wx) = Norm(Wx) for c > 0, exactly but for the normaliser's eps (it
divides by sqrt(var + eps), a relative effect ~eps/var) (BatchNorm per output channel, so each
ROW of W is scale-invariant on its own; LayerNorm over the features, so only the WHOLE matrix is). The
classifier (last linear layer, with a bias) feeds no normalisation and is not scale-invariant.
``scale_invariant_names()`` lists the former: the architecture's ground truth for AdamP's test.
(Scale invariance of normalised weights: Ioffe & Szegedy 2015; van Laarhoven 2017; Heo et al. 2021.)
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

NORMS = ("batch", "layer")


def _norm(kind: str, width: int, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[max(dim, 1)](width)
    raise ValueError(f"invalid norm={kind!r}: must be one of {NORMS}")


class NormNet(nn.Module):
    """``input_shape`` reshape → ``body`` (a Sequential) → logits; remembers which weights feed a norm."""

    def __init__(self, body: nn.Sequential, input_shape: Sequence[int], invariant: Sequence[int]):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.body = body
        self._invariant = tuple(f"body.{i}.weight" for i in invariant)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.reshape((x.shape[0],) + self.input_shape))

    def scale_invariant_names(self) -> tuple[str, ...]:
        """Parameter names (as in ``named_parameters()``) of the weights that feed a normalisation."""
        return self._invariant


def norm_mlp(d_in: int, widths: Sequence[int], n_out: int, norm: str = "batch") -> NormNet:
    """Linear(no bias) → Norm → ReLU per hidden width, then a Linear classifier with bias."""
    layers, invariant, d = [], [], d_in
    for w in widths:
        invariant.append(len(layers))
        layers += [nn.Linear(d, w, bias=False), _norm(norm, w, 1), nn.ReLU()]
        d = w
    layers.append(nn.Linear(d, n_out))
    return NormNet(nn.Sequential(*layers), (d_in,), invariant)


def bn_cnn1d(length: int, channels: Sequence[int], n_out: int) -> NormNet:
    """1-D CNN for sequences of ``length``: Conv1d(k5) → BN → ReLU, then stride-2 Conv1d(k3) →
    BN → ReLU for each further channel count, then flatten → Linear classifier."""
    layers, invariant, c_in, n = [], [], 1, length
    for i, c in enumerate(channels):
        conv = (nn.Conv1d(c_in, c, 5, padding=2, bias=False) if i == 0
                else nn.Conv1d(c_in, c, 3, stride=2, padding=1, bias=False))
        n = n if i == 0 else (n + 1) // 2
        invariant.append(len(layers))
        layers += [conv, nn.BatchNorm1d(c), nn.ReLU()]
        c_in = c
    layers += [nn.Flatten(), nn.Linear(c_in * n, n_out)]
    return NormNet(nn.Sequential(*layers), (1, length), invariant)


def bn_cnn2d(side: int, channels: Sequence[int], hidden: int, n_out: int) -> NormNet:
    """2-D CNN for ``side × side`` images: [Conv2d(k3) → BN → ReLU → MaxPool(2)] per channel
    count, flatten → Linear(no bias) → BN → ReLU → Linear classifier."""
    layers, invariant, c_in, n = [], [], 1, side
    for c in channels:
        invariant.append(len(layers))
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                   nn.MaxPool2d(2)]
        c_in, n = c, n // 2
    invariant.append(len(layers) + 1)
    layers += [nn.Flatten(), nn.Linear(c_in * n * n, hidden, bias=False), nn.BatchNorm1d(hidden),
               nn.ReLU(), nn.Linear(hidden, n_out)]
    return NormNet(nn.Sequential(*layers), (1, side, side), invariant)
