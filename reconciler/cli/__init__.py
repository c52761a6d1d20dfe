"""The ``reconciler`` command: verbs, flags, output and exit codes, and no logic of its own.

``group`` holds the group and ``main``; each verb has its module (``validate``,
``diff_apply``, ``get``, ``down``, ``images``, ``run``, ``remote``), imported only when that
verb runs. ``options`` declares the flags the verbs share, ``common`` reads hosts, settings,
manifests and plans from them, and ``output`` prints.
"""

from reconciler.cli.group import cli, main

__all__ = ["cli", "main"]
