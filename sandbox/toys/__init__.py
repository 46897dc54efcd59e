"""Toy problems, batched over a leading replica axis (``replica_dims=1``).

- :class:`NoiseDrivenToy`: tangential Gaussian gradient scaled by 1/‖w‖ (pure noise);
- :class:`RayleighQuotientToy`, :class:`CosineToy`: deterministic scale-invariant losses
  (a Rayleigh quotient on the sphere; the AdamP paper's −⟨ŵ, ŵ*⟩);
- :class:`NormalizedLinearToy`: a linear layer + Batch/LayerNorm trained on random data with
  minibatches (scale invariance from the layer);
- :class:`NoisyQuadratic`: gradient noise with covariance H/B;
- :class:`GradientStream`: random linear losses, a gradient stream independent of w;
- :class:`Reparametrised`: loss-rescaled and diagonally reparametrised variants of any toy,
  stacked on a second replica axis, sharing the noise.
"""
from .gradient_stream import GradientStream
from .noise import NoiseDrivenToy
from .normalized_linear import NormalizedLinearToy
from .quadratic import NoisyQuadratic
from .reparametrised import Reparametrised
from .replica_toy import ReplicaToy
from .sphere import CosineToy, RayleighQuotientToy

__all__ = ["NoiseDrivenToy", "RayleighQuotientToy", "CosineToy", "NormalizedLinearToy",
           "NoisyQuadratic", "GradientStream", "Reparametrised", "ReplicaToy"]
