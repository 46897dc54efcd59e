"""Fast paths of the sandbox's rules (``impl='fast'`` / ``'auto'`` of :class:`RuleOptimizer`).

The reference path (``impl='reference'``) runs each stage's readable update per tensor. The fast
path runs the SAME chain of stages: chains that are exactly torch.optim's SGD/Adam/AdamW go to
torch's fused (CPU) or foreach (CUDA) kernels; every other chain runs the stages' list forms over
chunks of tensors (in-place list kernels, one scratch buffer no larger than the largest
parameter, coefficients folded into one final pass, AdamP's projection from four row sums).
Equal to the reference up to float round-off: tests/test_fast_paths.py.
"""
from .executor import FastExecutor, Info

__all__ = ["FastExecutor", "Info"]
