"""Which code produced a set of ``verify`` results: the package version plus a source hash.

``verify`` resumes from the results saved under ``--out`` (see :mod:`sandbox.verify.runner`);
rows written by other code must not be reused, so every saved family is stamped with the
:class:`CodeFingerprint` that produced it and ``report.md`` names it.

The fingerprint is the installed package version (``sandbox.__version__``, else the
distribution's metadata) and a sha256 over every ``*.py`` file of the packages whose code
determines the results (:data:`SOURCE_PACKAGES`): files sorted by their path relative to the
package's parent folder, each contributing its relative path and its bytes. Any edit — even a
comment — changes it: the hash errs towards rerunning rather than reusing stale rows. It is
computed once per process (about a hundred small files: milliseconds).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# The packages whose source determines verify's results (the optimizers, the claims, the checks).
SOURCE_PACKAGES = ("sandbox", "theory")
DISTRIBUTION = "optim-sandbox"
SHORT = 12  # hex digits of the sha256 shown and compared


@dataclass(frozen=True)
class CodeFingerprint:
    """The package ``version`` and the full hex ``source_sha256`` of the source files."""

    version: str
    source_sha256: str

    @property
    def short_sha(self) -> str:
        return self.source_sha256[:SHORT]

    @property
    def id(self) -> str:
        """Compact key saved per family in ``verify_state.json``, e.g. ``0.1.0+3f2a9c01be47``."""
        return f"{self.version}+{self.short_sha}"

    def describe(self) -> str:
        """For people, e.g. ``sandbox 0.1.0, source sha256 3f2a9c01be47``."""
        return f"sandbox {self.version}, source sha256 {self.short_sha}"


def package_version() -> str:
    """``sandbox.__version__``, else the installed distribution's version, else ``unknown``."""
    import sandbox

    version = getattr(sandbox, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def source_files(packages=SOURCE_PACKAGES) -> list[tuple[str, Path]]:
    """``(relative path, file)`` for every ``*.py`` of ``packages`` (as imported here), sorted by
    the relative path (``sandbox/verify/runner.py`` …). A package that is not importable is left
    out."""
    files = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            root = Path(location)
            for path in root.rglob("*.py"):
                if "__pycache__" in path.parts:
                    continue
                files.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return sorted(files)


def source_sha256(packages=SOURCE_PACKAGES) -> str:
    """Full hex sha256 over the relative paths and contents of :func:`source_files`."""
    digest = hashlib.sha256()
    for rel, path in source_files(packages):
        data = path.read_bytes()
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(str(len(data)).encode())
        digest.update(b"\0")
        digest.update(data)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> CodeFingerprint:
    """The fingerprint of the code running in this process (computed once, then cached)."""
    return CodeFingerprint(package_version(), source_sha256())
