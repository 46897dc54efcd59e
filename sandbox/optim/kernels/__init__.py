"""Fused CPU kernels (numba) of the optimizer rules: a second form of the stages' math.

Each module mirrors one rule family's chain of stages (:mod:`sandbox.optim.stages`) as straight
per-row / per-element loops over lists of contiguous CPU float32/float64 tensors, with the same
state keys as the stages, and is tested equal to them (``tests/kernels``):

- :mod:`.adam_cpu`: adamw, adamp, adam (coupled L2), with the radial projection;
- :mod:`.sgd_cpu`: sgd (torch's), sgdp (official), with the radial projection;
- :mod:`.adai_cpu`: adai, adaiw (two sweeps: ``reduce`` then ``update``);
- :mod:`.rootfree_cpu`: rfadamw, rfrmsprop.

Shared: :mod:`.layout_cpu` (pointer tables and the work layout), :mod:`.projection_cpu` (row sums,
verdicts, projected apply), :mod:`.numba_setup` (threading layer and thread count).
The modules import numba on import; import them only where the kernels are used.
"""
