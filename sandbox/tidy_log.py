"""Results are data: a tidy CSV table that grows as results are produced (a crash loses nothing)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


class TidyLog:
    """A CSV at ``path`` that grows by :meth:`append` (header written once).

    ``fresh=True`` removes an existing file first (the family is starting over).
    """

    def __init__(self, path: Path, fresh: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            self.path.unlink()

    def append(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame.to_csv(self.path, mode="a", header=not self.path.exists(), index=False)

    def read(self) -> pd.DataFrame:
        return pd.read_csv(self.path) if self.path.exists() else pd.DataFrame()
