"""The one place where Docker's errors become ours, and the container list decoded.

Every docker-py call goes through :func:`call`, which turns the SDK's and ``requests``'
exceptions into the ``core.errors`` tree with ``raise ... from``: ``HostUnavailable`` when
the engine cannot be reached (temporary), ``NotFound`` when the object is gone,
``ApplyError`` when the engine refused. No ``docker.errors`` type leaves the engine package.
docker-py itself is imported only when a call is made (``engine.sdk`` opens the client):
the list calls of observing use ``engine.listing``, standard library only, which words its
failures the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from reconciler.core.errors import ApplyError, HostUnavailable, NotFound
from reconciler.engine.reach import explain_unreachable
from reconciler.source.hosts import Host

if TYPE_CHECKING:
    from reconciler.engine.listing import EngineLister

#: The url an ssh host's client is made for before ``engine.ssh`` takes its requests over.
SSH_PLACEHOLDER = "tcp://127.0.0.1:1"

#: Seconds to open a TCP connection to an engine. A host that drops packets (powered off,
#: firewalled) is then reported unreachable this fast, not after the whole request timeout.
CONNECT_TIMEOUT = 5.0

T = TypeVar("T")


def explain(exc: Exception) -> str:
    """The engine's own words for a failure, when it gave some."""
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode(errors="replace")
        return str(explanation or exc)
    return str(exc)


def call(host: Host, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one docker-py call, translating its errors into ours."""
    import docker.errors  # imported already: the call's client is docker-py's
    import requests.exceptions

    try:
        return function(*args, **kwargs)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise HostUnavailable(explain_unreachable(host, exc)) from exc
    except docker.errors.NotFound as exc:
        raise NotFound(f"{what}: {explain(exc)}") from exc
    except docker.errors.APIError as exc:
        raise ApplyError(f"{what}: {explain(exc)}") from exc
    except docker.errors.DockerException as exc:
        raise HostUnavailable(f"host {host.name}: {explain(exc)}") from exc


#: One list response decoded into values at a time, across every host of the process. The
#: decoding holds the GIL anyway (so observing 20 hosts at once loses nothing), and each
#: response's bytes, text and parsed JSON are briefly several times its size: decoding them
#: one after the other keeps the peak at one such response, not one per host.
DECODING = threading.Lock()


class Unchanged(Generic[T]):
    """The last list answer's digest and what ``then`` made of it: a pass whose answer is
    byte for byte the last one (a steady host: nothing started, stopped or changed since,
    and Docker's "Up 2 hours" unchanged) gets that value again without decoding a byte.

    Decoding is what a no-op pass spends most on (~25 µs a container: 30 ms for 20 hosts of
    40 containers, 0.25 s at 10,000 pods) and ``then`` is a pure function of the bytes, so
    the value is the same one. Only a 32-byte digest and the value are kept: the service
    holds that value between passes anyway."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        #: (digest, value) as one reference: a concurrent look sees both or neither
        self._last: tuple[bytes, T] | None = None

    def recall(self, body: bytes) -> tuple[bytes, T | None]:
        """(the body's digest, the value made of the same body last time, or None)."""
        digest = hashlib.blake2b(body, digest_size=32).digest()
        last = self._last
        return digest, last[1] if last is not None and last[0] == digest else None

    def keep(self, digest: bytes, value: T) -> T:
        self._last = (digest, value)
        return value

    def forget(self) -> None:
        self._last = None


def list_containers(
    lister: EngineLister,
    filters: Mapping[str, Any],
    then: Callable[[Any], T],
    unchanged: Unchanged[T] | None = None,
) -> T:
    """``GET /containers/json?all=1`` as docker-py's ``containers(all=True, filters=...)``
    asks it, the response fetched concurrently with other hosts, then decoded and handed to
    ``then`` under ``DECODING`` (so that what ``then`` keeps is all that outlives the lock)
    — unless ``unchanged`` holds the value of the same bytes (then that value)."""
    params = {"limit": -1, "all": 1, "size": 0, "trunc_cmd": 0}
    body = lister.get(
        "list containers", "/containers/json", {**params, "filters": filters_text(filters)}
    )
    digest = b""
    if unchanged is not None:
        digest, kept = unchanged.recall(body)
        if kept is not None:
            return kept
        unchanged.forget()  # the old value is not held while the new one is decoded
    with DECODING:
        value = then(json_array_items(body.decode("utf-8")))
    return value if unchanged is None else unchanged.keep(digest, value)


def list_volumes(lister: EngineLister, filters: Mapping[str, Any]) -> list[Any]:
    """``GET /volumes`` as docker-py's ``volumes(filters=...)`` asks it: the entries."""
    body = lister.get("list volumes", "/volumes", {"filters": filters_text(filters)})
    listed = json.loads(body.decode("utf-8")) or {}
    return list(listed.get("Volumes") or [])


def filters_text(filters: Mapping[str, Any]) -> str:
    """Filters as the Engine API takes them (``docker.utils.convert_filters``' form)."""
    return json.dumps({k: [v] if isinstance(v, str) else list(v) for k, v in filters.items()})


_DECODER = json.JSONDecoder()
_BETWEEN = re.compile(r"[\s,]*")


def json_array_items(text: str) -> Iterator[Any]:
    """The items of a JSON array, each decoded only when reached: a caller that keeps a
    slimmer value per item (``translate.host_state``) never holds all of them decoded."""
    index = _BETWEEN.match(text).end()  # type: ignore[union-attr]
    if text[index : index + 1] != "[":
        raise ValueError("the engine's answer is not a JSON array")
    index += 1
    while True:
        index = _BETWEEN.match(text, index).end()  # type: ignore[union-attr]
        if text[index : index + 1] == "]":
            return
        item, index = _DECODER.raw_decode(text, index)
        yield item
