"""The ``reconciler`` command. TODO"""

from reconciler.cli.group import cli, main

__all__ = ["cli", "main"]
