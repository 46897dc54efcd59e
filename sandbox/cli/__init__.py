"""Command-line interface: ``python -m sandbox {list,verify,compare,bench}``."""
