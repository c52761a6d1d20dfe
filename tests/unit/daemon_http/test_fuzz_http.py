"""The HTTP API, fuzzed: random requests, headers and bodies, and slow clients
(``bench.fuzz_http``), against a real server on 127.0.0.1.

Bounded, with a fixed seed, so that a failure reproduces; ``python -m bench.fuzz --only
http --inputs N --seed S`` runs longer and prints the figures. No request may make a
handler raise (a 500), change the state without the secret, or keep /healthz from
answering, even with clients that stall half-way through a request.
"""

from __future__ import annotations

import os

from bench.fuzz_http import fuzz_http

SEED = 14
INPUTS = int(os.environ.get("RECONCILER_FUZZ_INPUTS", "250"))


def test_random_requests_and_slow_clients_break_nothing() -> None:
    figures = fuzz_http(INPUTS, SEED, stalled=10)
    assert figures.inputs == INPUTS
    assert figures.crashes == [], "\n".join(figures.crashes[:5])
    statuses = figures.notes["statuses"]
    assert {"200", "404", "405"} <= set(statuses)  # the fuzzer reached real routes
