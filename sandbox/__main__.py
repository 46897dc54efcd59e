"""``python -m sandbox ...``: see :mod:`sandbox.cli.main`."""
import os
import sys

from .cli.main import INTERRUPTED, main

code = main()
if code == INTERRUPTED:
    # After a Ctrl-C the one line is printed and every result is already on disk: leave at once
    # with 130, so that nothing in the interpreter's shutdown (thread joins, atexit handlers)
    # can end the process by the signal instead (status -2, seen twice on a busy machine).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
