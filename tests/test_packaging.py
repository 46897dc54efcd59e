"""environment.yml (conda users) and pyproject.toml (pip) must name the same dependencies."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda name -> pip name
NOT_PACKAGES = {"python", "pip"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {_name(r) for r in reqs}


def environment_names() -> set[str]:
    """Package names under ``dependencies:`` (conda entries and the nested ``pip:`` list)."""
    names, section = set(), None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        top = re.match(r"^([a-z_]+):", line)
        if top:
            section = top.group(1)
            continue
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+[^#]*)$", line)
        if section == "dependencies" and m and not line.strip().endswith(":"):
            n = _name(m.group(1))
            names.add(CONDA_NAMES.get(n, n))
    return names - NOT_PACKAGES


def test_environment_and_pyproject_name_the_same_dependencies():
    py, env = pyproject_names(), environment_names()
    assert "torch" in py and "numpy" in env
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    last = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")][-1]
    assert last in readme, f"the README does not show CI's test command {last!r}"
    assert ci.index("torch==2.13.0") < ci.index('-e ".[dev]"'), "torch must be installed first"
