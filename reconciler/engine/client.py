"""The connection to one engine and the one place where Docker's errors become ours.

Every call goes through :func:`call`, which turns the SDK's and ``requests``' exceptions
into the ``core.errors`` tree with ``raise ... from``: ``HostUnavailable`` when the engine
cannot be reached (temporary), ``NotFound`` when the object is gone, ``ApplyError`` when the
engine refused. No ``docker.errors`` type leaves the engine package.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import docker
import docker.errors
import docker.tls
import requests

from reconciler.core.errors import ApplyError, HostUnavailable, NotFound
from reconciler.engine import ssh
from reconciler.engine.reach import explain_unreachable
from reconciler.source.hosts import Host

#: The url an ssh host's client is made for before ``engine.ssh`` takes its requests over.
SSH_PLACEHOLDER = "tcp://127.0.0.1:1"

#: Seconds to open a TCP connection to an engine. A host that drops packets (powered off,
#: firewalled) is then reported unreachable this fast, not after the whole request timeout.
CONNECT_TIMEOUT = 5.0

T = TypeVar("T")


class _APIClient(docker.APIClient):  # type: ignore[misc]
    """docker's client, with ``CONNECT_TIMEOUT`` on engines reached over TCP, and the TLS
    CA of the hosts file whatever the environment says.

    docker-py takes one number for both connecting and reading (and adds to it for
    ``stop``), so the split is made here, per request, where requests accepts a
    ``(connect, read)`` pair. Unix sockets and ssh (``http+docker://`` URLs) are left as
    they are: they connect at once or fail at once.
    """

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """The hosts file's CA wins over ``REQUESTS_CA_BUNDLE``: requests lets that
        variable replace a session's own CA (requests #3829), and a TLS engine's certificate
        would then be checked against the system's CAs and refused."""
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings

    def send(self, request: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        if isinstance(timeout, int | float) and str(request.url).startswith(
            ("http://", "https://")
        ):
            kwargs["timeout"] = (min(CONNECT_TIMEOUT, float(timeout)), timeout)
        return super().send(request, **kwargs)


def explain(exc: Exception) -> str:
    """The engine's own words for a failure, when it gave some."""
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode(errors="replace")
        return str(explanation or exc)
    return str(exc)


def open_client(host: Host, timeout: float, on_response: Callable[[str], None]) -> docker.APIClient:
    """A client for ``host`` (tcp, unix, ssh; TLS per the hosts file). ``on_response`` gets
    the method of every request made, for counting."""
    tls: Any = False
    if host.tls is not None:
        cfg = host.tls
        tls = docker.tls.TLSConfig(
            client_cert=(cfg.cert, cfg.key) if cfg.cert and cfg.key else None,
            ca_cert=cfg.ca,
            verify=cfg.ca if cfg.verify and cfg.ca else cfg.verify,
        )
    over_ssh = host.url.startswith("ssh://")
    try:
        api = _APIClient(
            # ssh: a placeholder, then the ssh transport (docker-py's needs paramiko)
            base_url=SSH_PLACEHOLDER if over_ssh else host.url,
            version=host.api_version,
            timeout=int(timeout),
            tls=tls,
            max_pool_size=16,
        )
    except docker.errors.DockerException as exc:
        raise HostUnavailable(f"host {host.name} ({host.url}): {explain(exc)}") from exc
    if over_ssh:
        ssh.mount(api, host, timeout, max_pool_size=16)

    def count(response: Any, *args: Any, **kwargs: Any) -> Any:
        on_response(str(response.request.method))
        return response

    api.hooks["response"].append(count)
    return api


def call(host: Host, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one Docker call, translating its errors into ours."""
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


def list_containers(
    api: docker.APIClient, filters: Mapping[str, Any], then: Callable[[Any], T]
) -> T:
    """``GET /containers/json?all=1`` as ``api.containers(all=True, filters=...)`` asks it,
    the response fetched concurrently with other hosts, then decoded and handed to ``then``
    under ``DECODING`` (so that what ``then`` keeps is all that outlives the lock)."""
    params = {"limit": -1, "all": 1, "size": 0, "trunc_cmd": 0, "since": None, "before": None}
    params["filters"] = docker.utils.convert_filters(dict(filters))
    response = api._get(api._url("/containers/json"), params=params)
    api._raise_for_status(response)  # as api._result does
    with DECODING:
        return then(json_array_items(response.content.decode("utf-8")))


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
