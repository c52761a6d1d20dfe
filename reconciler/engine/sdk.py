"""docker-py's client for one engine: every call but the list calls of observing.

Imported only when such a call is made (``DockerHost.api`` opens the client on first use):
docker-py, requests and urllib3 cost more to import than a no-op ``reconciler diff``'s
whole work, and observing needs none of them (``engine.listing``). Here: the client with
the connect timeout and the hosts file's CA (``_APIClient``), and the requests adapter that
takes an ``ssh://`` host's requests through ``engine.ssh``'s process socket (docker-py's
own ssh transport needs paramiko).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import docker.tls
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from reconciler.core.errors import HostUnavailable
from reconciler.engine.client import CONNECT_TIMEOUT, SSH_PLACEHOLDER, explain
from reconciler.engine.ssh import SSHProcessSocket
from reconciler.source.hosts import Host


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
        mount(api, host, timeout, max_pool_size=16)

    def count(response: Any, *args: Any, **kwargs: Any) -> Any:
        on_response(str(response.request.method))
        return response

    api.hooks["response"].append(count)
    return api


class _SSHConnection(urllib3.connection.HTTPConnection):
    def __init__(self, host: Host, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.ssh_host = host

    def connect(self) -> None:
        sock = SSHProcessSocket(self.ssh_host)
        sock.connect()
        self.sock = sock


class _SSHConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    scheme = "ssh"

    def __init__(self, host: Host, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self.ssh_host = host
        self.ssh_timeout = timeout

    def _new_conn(self) -> Any:
        return _SSHConnection(self.ssh_host, self.ssh_timeout)


class SSHAdapter(BaseHTTPAdapter):  # type: ignore[misc]
    """requests' adapter for ``http+docker://ssh`` URLs: one pool, ssh processes as sockets."""

    def __init__(self, host: Host, timeout: float, max_pool_size: int) -> None:
        self.pool = _SSHConnectionPool(host, timeout, max_pool_size)
        super().__init__()

    def get_connection(self, url: Any, _proxies: Any = None) -> Any:
        return self.pool

    def close(self) -> None:
        super().close()
        self.pool.close()


def mount(api: Any, host: Host, timeout: float, max_pool_size: int) -> None:
    """Route ``api``'s requests through ssh to ``host`` (``api`` was made for a placeholder
    url: docker-py's own ssh branch would need paramiko)."""
    adapter = SSHAdapter(host, timeout, max_pool_size)
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
    api.base_url = "http+docker://ssh"
    for prefix in ("http://", "https://"):
        api.adapters.pop(prefix, None)
