"""Toy problems, batched over a leading replica axis (``replica_dims=1``)."""
from .noise import NoiseDrivenToy

__all__ = ["NoiseDrivenToy"]
