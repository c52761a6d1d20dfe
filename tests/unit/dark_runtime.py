"""In-memory hosts that black-hole a call: ``MemoryHost`` (a real implementation of the
runtime protocols, see ``memory_runtime``) whose list call, or whose pod creation, blocks
until the test lets it through, as a call to an engine whose packets are dropped blocks
until a socket timeout.

``DarkHost.go_dark()`` makes every later call (``observe``, and every other operation)
wait on an Event (``light()`` lets them through); ``observing`` and ``most_at_once`` count
the observations in flight, so a test can check that a host is never asked twice at once.
``SlowHost`` does the same to ``create_pod``: a host whose actions take as long as the test
says.
"""

from __future__ import annotations

import threading
from typing import Any

from reconciler.core.model import DesiredPod, HostState

from .memory_runtime import MemoryHost

#: The longest a blocked call waits for the test to let it through: a test that forgets to
#: (or fails before it does) ends instead of hanging, like a socket's read timeout.
HOLD_AT_MOST = 60.0


class DarkHost(MemoryHost):
    """A host whose calls do not come back while it is dark."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self._lit = threading.Event()
        self._lit.set()
        self._count = threading.Lock()
        self.observing = 0  # observations in flight now
        self.most_at_once = 0
        self.observed = 0  # observations started, in all

    def go_dark(self) -> None:
        self._lit.clear()

    def light(self) -> None:
        self._lit.set()

    def _check(self, what: str) -> None:  # every operation but observe asks this first
        self._lit.wait(HOLD_AT_MOST)
        super()._check(what)

    def observe(self, volumes: bool | None = None) -> HostState:
        with self._count:
            self.observing += 1
            self.observed += 1
            self.most_at_once = max(self.most_at_once, self.observing)
        try:
            self._lit.wait(HOLD_AT_MOST)
            return super().observe(volumes)
        finally:
            with self._count:
                self.observing -= 1


class SlowHost(MemoryHost):
    """A host whose pod creations do not come back until the test lets them."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.go = threading.Event()
        self.started = 0  # creations begun

    def create_pod(self, pod: DesiredPod) -> None:
        self.started += 1
        self.go.wait(HOLD_AT_MOST)
        super().create_pod(pod)
