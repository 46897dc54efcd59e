"""The command line answers at once: parsing (``--help``, argument errors) imports no torch;
bad output paths and Ctrl-C end in one line with exit status 2 and 130.

No test here measures time: "at once" is checked by what is imported (``sys.modules``), which a
busy machine does not change.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [
    p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
HEAVY = ("torch", "pandas", "matplotlib", "scipy")
CALLS = [["--help"], ["verify", "--help"], ["compare", "--help"], ["bench", "--help"],
         ["list", "--help"], ["verify", "--threads", "x"], ["bench", "--nope"],
         ["compare", "--seeds", "many"], ["frobnicate"]]


def _python(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_the_cli_layer_imports_nothing_heavy_to_parse():
    """sandbox.cli with the package's own ``__init__`` left out and torch, pandas, matplotlib and
    scipy made unimportable: every --help and argument error still answers (exit 0 or 2)."""
    proc = _python(f"""
        import importlib.abc, sys, types, contextlib, io
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {HEAVY!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        pkg = types.ModuleType("sandbox"); pkg.__path__ = [{str(ROOT / 'sandbox')!r}]
        sys.modules["sandbox"] = pkg
        from sandbox.cli.main import main
        for argv in {CALLS!r}:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    code = main(argv)
                except SystemExit as e:
                    code = e.code
            print(argv, code)
            assert code in (0, 2), (argv, code)
        print("heavy:", sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "heavy: []" in proc.stdout


@pytest.mark.parametrize("argv", [["--help"], ["verify", "--help"], ["bench", "--help"],
                                  ["verify", "--threads", "x"]])
def test_python_m_sandbox_parses_without_torch(argv):
    """The real entry point: ``python -m sandbox ...`` with --help or a bad argument leaves torch
    unimported. This needs the package's ``__init__`` to import the optimizer library lazily."""
    probe = _python("import sys, sandbox; print('torch' in sys.modules)")
    if probe.stdout.strip() == "True":
        pytest.xfail("`import sandbox` itself imports torch (sandbox/__init__.py re-exports "
                     "sandbox.optim eagerly); the CLI layer is checked above")
    proc = _python(f"""
        import runpy, sys
        sys.argv = ["sandbox"] + {argv!r}
        try:
            runpy.run_module("sandbox", run_name="__main__")
        except SystemExit as e:
            code = e.code
        print("torch imported:", "torch" in sys.modules, "exit", code)
    """)
    assert "torch imported: False" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_python_m_sandbox_escape_parses_without_torch():
    probe = _python("import sys, sandbox; print('torch' in sys.modules)")
    if probe.stdout.strip() == "True":
        pytest.xfail("`import sandbox` itself imports torch (sandbox/__init__.py)")
    proc = _python("""
        import runpy, sys
        sys.argv = ["x", "--help"]
        try:
            runpy.run_module("sandbox.escape", run_name="__main__")
        except SystemExit:
            pass
        print("torch imported:", "torch" in sys.modules)
    """)
    assert "torch imported: False" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_the_clis_named_defaults_are_the_librarys():
    from sandbox.benchmarks.report import SECTIONS
    from sandbox.benchmarks.tensor_sets import SETS
    from sandbox.cli import bench_cmd, compare_cmd
    from sandbox.compare.config import DEFAULT_LR_GRID_SPEC, DEFAULT_OPTIMIZERS

    assert bench_cmd.SECTIONS == tuple(SECTIONS) and bench_cmd.SETS == tuple(SETS)
    assert compare_cmd.DEFAULT_OPTIMIZERS == tuple(DEFAULT_OPTIMIZERS)
    assert compare_cmd.DEFAULT_LR_GRID_SPEC == DEFAULT_LR_GRID_SPEC


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", [["verify", "--only", "identity.gd"], ["bench", "--quick"],
                                     ["compare", "--defaults", "--seeds", "1"],
                                     ["escape"]])
def test_an_output_path_that_is_a_file_is_one_line_and_exit_2(tmp_path, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = ([sys.executable, "-m", "sandbox.escape", "--quick"] if command == ["escape"]
            else [sys.executable, "-m", "sandbox", *command])
    for out in (blocker, blocker / "sub"):
        proc = subprocess.run(args + ["--out", str(out)], cwd=ROOT, env=ENV, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = _one_line(proc.stderr)
        assert "error" in line and str(blocker) in line, line


def _interrupt(args: list[str], marker: str, timeout: float = 600) -> tuple[int, str]:
    """Start ``args``, wait until ``marker`` appears on its stderr (the work has started), send
    SIGINT; return (exit status, what it wrote on stderr after that)."""
    import threading

    proc = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read1(4096), b"")),
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout  # a hang guard, not a speed requirement
    try:
        while marker.encode() not in b"".join(chunks):
            assert proc.poll() is None, b"".join(chunks).decode()[-2000:]
            assert time.monotonic() < deadline, "hang guard"
            time.sleep(0.05)
        before = len(b"".join(chunks))
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=timeout)
        reader.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, b"".join(chunks)[before:].decode()


def test_ctrl_c_in_verify_is_one_line_with_the_command_that_resumes(tmp_path):
    out = tmp_path / "v"
    args = [sys.executable, "-m", "sandbox", "verify", "--quick", "--only", "asymptote.*",
            "--out", str(out)]
    code, err = _interrupt(args, "asymptotes")
    assert code == 130, err
    line = err.strip().splitlines()[-1].split("\r")[-1]  # after the progress bar's last state
    assert line.startswith("verify interrupted;") and str(out) in line
    assert "rerun `python -m sandbox verify --quick --only 'asymptote.*' --out" in line


def test_ctrl_c_in_bench_is_one_line_with_the_command_that_resumes(tmp_path):
    out = tmp_path / "b"
    args = [sys.executable, "-m", "sandbox", "bench", "--quick", "--only", "steps", "--out",
            str(out)]
    code, err = _interrupt(args, "%")
    assert code == 130, err
    last = err.strip().splitlines()[-1].split("\r")[-1]
    assert last.startswith("bench interrupted;") and "rerun `python -m sandbox bench" in last
