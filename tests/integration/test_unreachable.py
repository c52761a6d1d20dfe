"""A host that drops packets is reported unreachable after the connect timeout, not after
the whole request timeout, and the other hosts are observed meanwhile.

The black hole is a listener on 127.0.0.1 whose accept queue is full (conftest's
``black_hole``): the kernel drops new SYNs, as a powered-off or firewalled host would.
"""

from __future__ import annotations

import os
import time

import docker

from reconciler.apply.converge import observe
from reconciler.engine.client import CONNECT_TIMEOUT
from reconciler.engine.host import DockerHost
from reconciler.source.hosts import DEFAULT_SOCKET, Host

REQUEST_TIMEOUT = 60.0


def test_a_black_holed_engine_is_unreachable_after_the_connect_timeout(
    black_hole: int, docker_client: docker.DockerClient
) -> None:
    del docker_client  # only to fail early when no engine answers
    hole = DockerHost(
        Host(name="hole", url=f"tcp://127.0.0.1:{black_hole}", address="127.0.0.1"),
        instance="it-unreachable",
        timeout=REQUEST_TIMEOUT,
    )
    local = DockerHost(
        Host("local", os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET, "127.0.0.1"),
        instance="it-unreachable",
        timeout=REQUEST_TIMEOUT,
    )
    started = time.monotonic()
    states = observe({"hole": hole, "local": local})
    elapsed = time.monotonic() - started
    assert not states["hole"].reachable
    assert "hole" in states["hole"].error and "timed out" in states["hole"].error
    assert states["local"].reachable, states["local"].error
    # the connect timeout ended it, not the request timeout: a bound on which timeout
    # applied (CONNECT_TIMEOUT is 5 s), not a speed claim
    assert CONNECT_TIMEOUT < REQUEST_TIMEOUT / 4
    assert elapsed < REQUEST_TIMEOUT / 2, elapsed
    hole.close()
    local.close()
