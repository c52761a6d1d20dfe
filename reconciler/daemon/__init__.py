"""``reconciler run``: the level-triggered loop, its triggers (poll, webhook, watch, Docker
events), logging, and the HTTP side in ``daemon.http``.

May import: ``apply`` and everything below it.
"""
