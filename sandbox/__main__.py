"""``python -m sandbox ...``: see :mod:`sandbox.cli.main`."""
import sys

from .cli.main import main

sys.exit(main())
