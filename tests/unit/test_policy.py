"""The operator's policy (``check.policy``): what a manifest may ask of the hosts, decided by
``--policy`` and ``--allow-host-path``, never by the manifest.

Through the real loader and validator, and through the CLI verbs that read manifests
(``validate``, ``diff``, ``apply``: both stop before they reach a host, so no Docker here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from reconciler.check.policy import ENGINE_SOCKETS, OPEN_POLICY, Level, Policy
from reconciler.check.validate import validate
from reconciler.cli import cli
from reconciler.core.model import Diagnostic
from reconciler.source.load import parse_text

#: Issue 14's first row: the host's root and the Docker socket, read-write, and a hostPort.
EVIL = """\
apiVersion: v1
kind: Pod
metadata:
  name: evil
spec:
  volumes:
    - name: root
      hostPath: {path: /}
    - name: sock
      hostPath: {path: /var/run/docker.sock}
  containers:
    - name: x
      image: busybox
      ports: [{containerPort: 80, hostPort: 8080}]
      volumeMounts:
        - {name: root, mountPath: /host}
        - {name: sock, mountPath: /var/run/docker.sock}
"""


def errors(text: str, policy: Policy | None = None) -> list[Diagnostic]:
    result = validate(parse_text(text, "p.yaml"), *([policy] if policy else []))
    return result.errors


def rules(text: str, policy: Policy | None = None) -> list[tuple[int, str, str]]:
    """(line, field path, rule) of every policy error."""
    found = []
    for d in errors(text, policy):
        if d.message.startswith("policy "):
            rule = d.message.split("rule ", 1)[1].split(":", 1)[0]
            found.append((d.location.line, d.path, rule))
    return found


def pod(spec: dict[str, Any], name: str = "p") -> str:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    return yaml.safe_dump(body, sort_keys=False)


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "busybox", **fields}


# -- baseline, the default -------------------------------------------------------------------
def test_the_default_refuses_the_host_root_the_docker_socket_and_host_ports() -> None:
    assert rules(EVIL) == [
        (8, "spec.volumes[0].hostPath.path", "docker-socket"),
        (10, "spec.volumes[1].hostPath.path", "docker-socket"),
        (14, "spec.containers[0].ports[0].hostPort", "host-ports"),
    ]
    messages = [d.message for d in errors(EVIL)]
    assert "only --allow-host-path /var/run/docker.sock, that exact path, allows it" in messages[1]
    assert "--policy privileged allows it" in messages[2]


@pytest.mark.parametrize(
    ("spec", "where", "rule"),
    [
        ({"hostNetwork": True}, "spec.hostNetwork", "host-namespaces"),
        ({"hostPID": True}, "spec.hostPID", "host-namespaces"),
        ({"hostIPC": True}, "spec.hostIPC", "host-namespaces"),
        (
            {"containers": [container(securityContext={"privileged": True})]},
            "spec.containers[0].securityContext.privileged",
            "privileged",
        ),
        (
            {"containers": [container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})]},
            "spec.containers[0].securityContext.capabilities.add[0]",
            "capabilities",
        ),
        (
            {"containers": [container(securityContext={"procMount": "Unmasked"})]},
            "spec.containers[0].securityContext.procMount",
            "proc-mount",
        ),
        (
            {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
            "spec.securityContext.seccompProfile.type",
            "seccomp",
        ),
        (
            {
                "containers": [
                    container(securityContext={"appArmorProfile": {"type": "Unconfined"}})
                ]
            },
            "spec.containers[0].securityContext.appArmorProfile.type",
            "apparmor",
        ),
        (
            {"securityContext": {"seLinuxOptions": {"user": "system_u"}}},
            "spec.securityContext.seLinuxOptions.user",
            "selinux",
        ),
        (
            {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}},
            "spec.securityContext.sysctls[0].name",
            "sysctls",
        ),
        (
            {"volumes": [{"name": "v", "hostPath": {"path": "/srv/data"}}]},
            "spec.volumes[0].hostPath.path",
            "host-path-volumes",
        ),
    ],
)
def test_each_baseline_rule_is_an_error_at_its_field_naming_the_rule(
    spec: dict[str, Any], where: str, rule: str
) -> None:
    spec = {"containers": [container()], **spec}
    found = rules(pod(spec))
    assert [(path, name) for _, path, name in found] == [(where, rule)]
    assert errors(pod(spec), Policy(Level.PRIVILEGED)) == []  # the operator's choice


def test_baseline_allows_what_docker_allows_by_default() -> None:
    safe = {
        "securityContext": {
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
        },
        "containers": [
            container(
                securityContext={
                    "capabilities": {"add": ["NET_BIND_SERVICE", "CAP_CHOWN"], "drop": ["ALL"]},
                    "seLinuxOptions": {"type": "container_t"},
                },
                ports=[{"containerPort": 80}],
            )
        ],
    }
    assert errors(pod(safe)) == []


def test_the_rule_is_checked_in_a_replication_controllers_template() -> None:
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"hostNetwork": True, "containers": [container()]},
            },
        },
    }
    assert [(p, r) for _, p, r in rules(yaml.safe_dump(rc))] == [
        ("spec.template.spec.hostNetwork", "host-namespaces")
    ]


# -- host paths ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("allowed", "path", "ok"),
    [
        (("/srv",), "/srv", True),
        (("/srv",), "/srv/data/x", True),
        (("/srv",), "/srv//data/./x/", True),
        (("/srv",), "/srvdata", False),
        (("/srv/",), "/srv/data", True),
        (("/",), "/etc", True),
        # the engine's socket only when named exactly, whatever covers it
        (("/",), "/var", False),
        (("/",), "/var/run/docker.sock", False),
        (("/var/run",), "/var/run/docker.sock", False),
        (("/var/run",), "/var/run", True),  # named exactly: the operator means it
        (("/var/run/docker.sock",), "/var/run/docker.sock", True),
        (("/var/run/docker.sock",), "/var//run/docker.sock", True),
        (("/run",), "/run/containerd/containerd.sock", False),
        (("/", "/var/run/docker.sock"), "/", True),
    ],
)
def test_allow_host_path_opens_prefixes_and_the_socket_only_by_name(
    allowed: tuple[str, ...], path: str, ok: bool
) -> None:
    policy = Policy.from_flags("baseline", allowed)
    assert policy.allows_host_path(path) is ok


def test_privileged_allows_host_paths_but_not_the_engine_socket() -> None:
    privileged = Policy(Level.PRIVILEGED)
    assert privileged.allows_host_path("/etc")
    for socket_path in ENGINE_SOCKETS:
        assert not privileged.allows_host_path(socket_path)
    assert not privileged.allows_host_path("/var")
    assert rules(EVIL, privileged) == [
        (8, "spec.volumes[0].hostPath.path", "docker-socket"),
        (10, "spec.volumes[1].hostPath.path", "docker-socket"),
    ]
    named = Policy.from_flags("privileged", ["/", "/var/run/docker.sock"])
    assert errors(EVIL, named) == []
    assert OPEN_POLICY.allows_host_path("/var/run/docker.sock")


def test_a_relative_allowed_path_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        Policy.from_flags("baseline", ["srv"])
    with pytest.raises(ValueError, match="unknown policy"):
        Policy.from_flags("lenient", [])


# -- restricted ------------------------------------------------------------------------------
def test_restricted_wants_non_root_no_escalation_dropped_capabilities_runtime_seccomp() -> None:
    found = {rule for _, _, rule in rules(pod({"containers": [container()]}), _restricted())}
    assert found == {
        "privilege-escalation",
        "capabilities",
        "running-as-non-root",
        "seccomp",
    }
    hardened = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            container(
                securityContext={
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                    "runAsUser": 1000,
                }
            )
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    assert errors(pod(hardened), _restricted()) == []
    hardened["containers"][0]["securityContext"]["capabilities"]["add"] = ["CHOWN"]
    hardened["containers"][0]["securityContext"]["runAsUser"] = 0
    hardened["volumes"] = [{"name": "n", "nfs": {"server": "x", "path": "/"}}]
    assert {r for _, _, r in rules(pod(hardened), _restricted())} == {
        "capabilities",
        "running-as-non-root-user",
        "volume-types",
    }


def _restricted() -> Policy:
    return Policy(Level.RESTRICTED)


# -- the verbs -------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["validate", "diff", "apply"])
def test_every_verb_refuses_before_anything_runs(verb: str, tmp_path: Path) -> None:
    manifest = tmp_path / "evil.yaml"
    manifest.write_text(EVIL)
    args = [verb, str(manifest)] if verb == "validate" else [verb, "--source", str(manifest)]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == (1 if verb == "validate" else 2), done.output
    assert (
        f"{manifest}:8:18: error: Pod/evil: spec.volumes[0].hostPath.path: policy baseline, "
        "rule docker-socket" in done.output
    )
    assert (
        f"{manifest}:14:35: error: Pod/evil: spec.containers[0].ports[0].hostPort: policy "
        "baseline, rule host-ports" in done.output
    )


def test_the_policy_comes_from_the_flags_and_the_environment(tmp_path: Path) -> None:
    manifest = tmp_path / "ports.yaml"
    manifest.write_text(
        pod({"containers": [container(ports=[{"containerPort": 80, "hostPort": 80}])]})
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["validate", str(manifest)]).exit_code == 1
    assert runner.invoke(cli, ["validate", "--policy", "privileged", str(manifest)]).exit_code == 0
    env = {"RECONCILER_POLICY": "privileged"}
    assert runner.invoke(cli, ["validate", str(manifest)], env=env).exit_code == 0
    done = runner.invoke(cli, ["validate", "--allow-host-path", "relative", str(manifest)])
    assert done.exit_code == 2 and "absolute" in done.output


def test_run_reads_the_policy_from_its_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "source: /srv/manifests\npolicy: restricted\nallow-host-path: [/srv/data, /var/log]\n"
    )
    done = CliRunner().invoke(cli, ["run", "--config", str(config), "--print-config"])
    assert done.exit_code == 0, done.output
    shown = yaml.safe_load(done.output)
    assert shown["policy"] == "restricted"
    assert shown["allow_host_path"] == ["/srv/data", "/var/log"]
