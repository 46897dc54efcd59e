"""Strip outputs from the notebooks so that diffs stay readable (run before committing).

    python notebooks/strip_outputs.py            # strip every notebooks/*.ipynb in place
    python notebooks/strip_outputs.py --check    # exit 1 and list the notebooks that have outputs
    python notebooks/strip_outputs.py a.ipynb    # only these files

Stripped: code-cell outputs and execution counts, the ``execution`` timing and ``collapsed`` /
``scrolled`` view state in cell metadata, and saved widget state in the notebook metadata.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
CELL_KEYS = ("execution", "collapsed", "scrolled")
NOTEBOOK_KEYS = ("widgets",)


def dirty(nb) -> list[str]:
    """What in ``nb`` is not stripped (empty when clean)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            found.append(f"cell {i}: outputs or execution count")
        if any(k in cell.get("metadata", {}) for k in CELL_KEYS):
            found.append(f"cell {i}: execution/view metadata")
    if any(k in nb.metadata for k in NOTEBOOK_KEYS):
        found.append("notebook metadata: widget state")
    return found


def strip(nb):
    """``nb`` with outputs, execution counts, timings and widget state removed (in place)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for k in CELL_KEYS:
            cell.get("metadata", {}).pop(k, None)
    for k in NOTEBOOK_KEYS:
        nb.metadata.pop(k, None)
    return nb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    p.add_argument("--check", action="store_true", help="report, do not modify; exit 1 if dirty")
    args = p.parse_args(argv)
    paths = args.paths or sorted(HERE.glob("*.ipynb"))
    missing = [str(x) for x in paths if not x.is_file()]
    if missing:
        print(f"strip_outputs: no such notebook(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        found = dirty(nb)
        if args.check:
            if found:
                status = 1
                print(f"{path}: {'; '.join(found[:3])}" + (" …" if len(found) > 3 else ""))
        elif found:
            nbformat.write(strip(nb), path)
            print(f"stripped {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
