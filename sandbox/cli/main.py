"""Entry point of ``python -m sandbox``.

Each subcommand lives in its own module exposing ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``. Bad input raises :class:`UsageError`, printed as one line with exit 2.

The parser answers at once: this module and the subcommands' ``add_arguments`` import neither
torch nor the lab (pandas, matplotlib); ``run`` imports them when the work starts
(``tests/test_cli_startup.py`` checks it). Shared by the subcommands:

- :func:`writable_dir` — an output folder, created and proven writable before any work, or a
  one-line :class:`UsageError` naming it (exit 2);
- :func:`interrupted` — the one line a Ctrl-C prints: what was saved and the command that resumes
  (exit 130 = 128 + SIGINT).
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

SUBCOMMANDS = {
    "list": "sandbox.cli.list_cmd",
    "verify": "sandbox.cli.verify_cmd",
    "compare": "sandbox.cli.compare_cmd",
    "bench": "sandbox.cli.bench_cmd",
    "problems": "sandbox.cli.problems_cmd",
}
INTERRUPTED = 130


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints the usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sandbox", description="Optimizer research sandbox.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def writable_dir(path, option: str = "--out") -> Path:
    """Create ``path`` (a folder) and prove it writable, or raise UsageError naming it: an
    existing file, a folder that cannot be created or written are one line, not a traceback."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {str(out)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to {option} {str(out)!r}: {e.strerror or e}") from None
    return out


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: ``python -m sandbox`` and the arguments, shell-quoted."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "-m", "sandbox", *args])


def interrupted(command: str, saved: str, argv: list[str] | None = None) -> int:
    """Print the one line of a Ctrl-C — ``<command> interrupted; <saved>; rerun `<line>` to
    resume`` — on stderr and return the exit status 130. Further Ctrl-Cs are ignored from here
    on: a second interrupt during the interpreter's shutdown would otherwise end the process by
    the signal (status −2) after the line was printed (seen once on a loaded machine)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"{command} interrupted; {saved}; rerun `{command_line(argv)}` to resume",
          file=sys.stderr)
    return INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    args._argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args._run(args) or 0)
    except UsageError as e:
        print(f"python -m sandbox {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a command without its own handler: still one line
        return interrupted(args.command, "partial results may be saved", args._argv)
