"""Local pytest configuration of the parity tests.

* makes the repository root importable (so ``import sandbox`` works under plain ``pytest`` as
  well as ``python -m pytest``) and this folder (helpers ``references``, ``nets``, ``compare``);
* runs every parity test with ONE intra-op thread (restored afterwards): the problems are tiny
  (a few hundred elements), where thread start-up dominates and a loaded machine made a
  120-step float64 run 10x slower with 2 threads than with 1.
"""
import os
import sys

import pytest
import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
for _p in (_ROOT, _HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)
