"""Claim families of ``verify`` (see :mod:`sandbox.verify.base` for the interface)."""
