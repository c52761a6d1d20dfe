"""The service's parts that need no Docker: source kinds, backoff, own removals, the last
valid revision, JSON logs, config precedence. No mocks."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.daemon.config import RunConfig
from reconciler.daemon.fetch import DesiredSource
from reconciler.daemon.http.metrics import Metrics
from reconciler.daemon.http.status import StatusBoard
from reconciler.daemon.logs import JsonFormatter
from reconciler.daemon.triggers import Backoff, OwnRemovals, _Trigger


def test_git_sources_and_watched_directories(tmp_path: Path) -> None:
    assert RunConfig(source="https://example.invalid/ops/m.git").is_git
    assert RunConfig(source="git://127.0.0.1:9418/m.git").is_git
    assert RunConfig(source="file:///srv/m.git").is_git
    assert RunConfig(source="git@example.invalid:ops/m.git").is_git
    bare = tmp_path / "m.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    assert RunConfig(source=str(bare)).is_git
    plain = tmp_path / "manifests"
    plain.mkdir()
    assert not RunConfig(source=str(plain)).is_git


def test_backoff_grows_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    delays = [backoff.failed() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    backoff.succeeded()
    assert backoff.failed() <= 1.0


def test_json_log_lines_carry_revision_host_and_object() -> None:
    record = logging.LogRecord("reconciler", logging.INFO, __file__, 1, "created %s", ("x",), None)
    record.revision = "abc123"
    record.host = "h1"
    record.object = "ReplicationController/default/web"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "created x"
    assert (line["level"], line["revision"], line["host"]) == ("info", "abc123", "h1")
    assert line["object"] == "ReplicationController/default/web"
    assert line["time"].endswith("Z")


@pytest.mark.parametrize(
    ("config", "env", "flags", "wanted"),
    [
        ("interval: 7\n", {}, [], "7.0"),
        ("interval: 7\n", {"RECONCILER_INTERVAL": "9"}, [], "9.0"),
        ("interval: 7\n", {"RECONCILER_INTERVAL": "9"}, ["--interval", "11"], "11.0"),
        ("", {}, [], "30.0"),
    ],
)
def test_config_precedence_flags_env_file_defaults(
    tmp_path: Path, config: str, env: dict[str, str], flags: list[str], wanted: str
) -> None:
    """Flags beat RECONCILER_* env vars, which beat the file, which beats the defaults."""
    path = tmp_path / "config.yaml"
    path.write_text(config + "source: /srv/manifests\nwebhook-secret: hush\n")
    result = CliRunner(env=env).invoke(
        cli, ["run", "--config", str(path), *flags, "--print-config"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert str(shown["interval"]) == wanted
    assert shown["source"] == "/srv/manifests"
    assert shown["webhook_secret"] == "******"  # never printed


def test_unknown_config_key_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("source: x\nintervall: 3\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(path)])
    assert result.exit_code == 2
    assert "unknown setting 'intervall'" in result.output
    assert "interval" in result.output


# -- what wakes a pass, what a pass enforces ---------------------------------------------------
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers: [{name: web, image: "sample/frontend:1.0"}]
"""


def test_own_removals_are_echoes_until_the_ttl_after_the_pass() -> None:
    own = OwnRemovals(ttl=60.0)
    own.add(["c1", ""])
    assert len(own) == 1  # an empty id is never recorded
    assert own.echoes(_Trigger("event die web", "c1"))
    assert not own.echoes(_Trigger("event die db", "c2"))
    assert not own.echoes(_Trigger("start"))
    own.settle()  # the pass ended: c1 stays its own for the ttl
    assert own.echoes(_Trigger("event destroy web", "c1"))
    own.add(["c3"])
    own.settle(now=time.monotonic() - 61.0)  # a pass that ended more than a ttl ago
    assert not own.echoes(_Trigger("event destroy db", "c3"))
    assert own.echoes(_Trigger("event destroy web", "c1"))
    own.settle()  # expired ids go
    assert len(own) == 1


def test_an_invalid_revision_keeps_the_last_valid_one_in_force(tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(POD)
    board, metrics = StatusBoard(), Metrics()
    errors: list[tuple[str, str, list[str]]] = []

    def record(kind: str, message: str, details: Sequence[str] = ()) -> None:
        errors.append((kind, message, list(details)))

    source = DesiredSource(RunConfig(source=str(tmp_path)), board, metrics, record)
    first = source.fetch()
    assert first is not None
    manifests, _ = first
    assert [m.name for m in manifests] == ["web"]
    assert (source.invalid, errors) == (False, [])

    (tmp_path / "web.yaml").write_text(POD.replace("name: web}", "name: Web_}"))
    assert source.fetch() == first  # still enforcing the last valid manifests
    assert source.invalid
    ((kind, message, details),) = errors
    assert kind == "validation"
    assert "is invalid: 1 error(s); still enforcing" in message
    assert details[0].startswith(f"{tmp_path / 'web.yaml'}:3:")
    assert b"\nreconciler_validation_errors 1.0\n" in metrics.render()


def test_notify_and_signature_settings_are_checked_and_never_printed_whole(
    tmp_path: Path,
) -> None:
    hook = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    path = tmp_path / "config.yaml"
    path.write_text(f"source: /srv/manifests\nnotify: ['{hook}', 'http://127.0.0.1:9/h']\n")
    result = CliRunner(env={"RECONCILER_NOTIFY_FORMAT": "slack"}).invoke(
        cli, ["run", "--config", str(path), "--print-config"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["notify"] == ["https://hooks.slack.com/…", "http://127.0.0.1:9/…"]
    assert shown["notify_format"] == "slack" and "XXXXSECRET" not in result.output
    bad = CliRunner().invoke(cli, ["run", "--source", ".", "--notify", "ftp://x/y"])
    assert bad.exit_code == 2 and "expected an http:// or https:// URL" in bad.output
    lonely = CliRunner().invoke(
        cli, ["run", "--source", str(tmp_path), "--allowed-signers", str(path)]
    )
    assert lonely.exit_code == 2 and "without --verify-signatures" in lonely.output
    directory = CliRunner().invoke(
        cli,
        ["run", "--source", str(tmp_path), "--verify-signatures", "--allowed-signers", str(path)],
    )
    assert directory.exit_code == 2 and "only a git source" in directory.output
    bare = tmp_path / "m.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    keyless = CliRunner().invoke(cli, ["run", "--source", str(bare), "--verify-signatures"])
    assert keyless.exit_code == 2 and "needs --allowed-signers FILE" in keyless.output
    missing = CliRunner().invoke(
        cli,
        ["run", "--source", str(bare), "--verify-signatures", "--allowed-signers", "/nope"],
    )
    assert missing.exit_code == 2 and "/nope: no such file" in missing.output
