"""``python -m reconciler.cli``: the command, with every verb registered on one group."""

from reconciler.cli import main

main()
