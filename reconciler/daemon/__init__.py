"""``reconciler run``: the level-triggered loop, its triggers (poll, webhook, watch, Docker
events), logging, and the HTTP side in ``daemon.http``.

- ``config``: :class:`~.config.RunConfig` (what the service was told), ``PassOutcome``;
- ``loop``: :class:`~.loop.ReconcileService`, when a pass runs and the pass itself;
- ``fetch``: what a pass enforces, the newest valid revision or the last valid one;
- ``triggers``: what wakes a pass (directory watch, Docker events) and backoff;
- ``logs``: text or JSON log lines;
- ``http``: status, metrics, webhooks and the server; it knows nothing of the loop.

Names with a leading underscore are shared between these modules only.

May import: ``apply`` and everything below it.
"""
