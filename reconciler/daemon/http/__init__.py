"""The HTTP side of ``reconciler run``: liveness, readiness, metrics, status and webhooks.

The loop owns every decision; this package only shows its state and turns requests into
calls. Its modules, in the order a request meets them:

- ``server``: the listening socket, body limits, dispatch, :func:`~.server.serve`;
- ``endpoints``: what each route answers;
- ``webhook``: webhook signatures and tokens, payloads, :func:`~.webhook.sign`;
- ``status`` and ``metrics``: the :class:`~.status.StatusBoard` and :class:`~.metrics.Metrics`
  that the loop writes and the endpoints read, the only state the two sides share.

Names with a leading underscore are shared between these modules only.

May import: ``core`` (and the standard library, ``prometheus_client``); nothing of the loop.
"""
