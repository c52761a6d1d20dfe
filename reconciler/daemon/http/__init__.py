"""The HTTP side of ``reconciler run``: status board, metrics, webhook authentication and
parsing, and the server that routes requests to them.

May import: ``core`` (and the standard library, ``prometheus_client``); nothing of the loop.
"""
