"""With no engine answering, the reader learns which engine, why, and what to do next.

Real connections through the Docker SDK to addresses where nothing answers (a socket path
that does not exist, a closed port on 127.0.0.1): no engine is needed and nothing is mocked.
"""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.engine.host import DockerHost
from reconciler.source.hosts import Host

SAMPLE = Path(__file__).resolve().parents[2] / "sample-repo"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def observed_error(url: str) -> str:
    state = DockerHost(Host("local", url, "127.0.0.1"), instance="t").observe()
    assert not state.reachable
    return state.error


def test_a_missing_socket_says_so_and_how_to_start_an_engine(tmp_path: Path) -> None:
    error = observed_error(f"unix://{tmp_path}/docker.sock")
    assert error.startswith(
        f"host local: the Docker engine at unix://{tmp_path}/docker.sock does not answer: "
        "no such socket; start Docker there"
    )
    assert "DOCKER_HOST" in error and "--hosts" in error
    assert "Connection aborted" not in error and "FileNotFoundError" not in error


def test_a_closed_port_is_a_refused_connection() -> None:
    port = closed_port()
    error = observed_error(f"tcp://127.0.0.1:{port}")
    assert error == (
        f"host local: the Docker engine at tcp://127.0.0.1:{port} does not answer: "
        "connection refused (no engine listens there)"
    )


def test_apply_without_an_engine_names_it_and_places_nothing(tmp_path: Path) -> None:
    runner = CliRunner(
        env={
            "DOCKER_HOST": f"unix://{tmp_path}/docker.sock",
            "RECONCILER_STATE_DIR": str(tmp_path / "state"),
        }
    )
    result = runner.invoke(cli, ["apply", "--source", str(SAMPLE), "--instance", "t"])
    assert result.exit_code == 1, result.output
    assert "does not answer: no such socket; start Docker there" in result.output
    assert "Connection aborted" not in result.output
    assert "capacity" not in result.output
    assert "cannot be placed: no host is reachable" in result.output
