"""``reconciler get``: pods, replication controllers, services or hosts as kubectl lists
them, read from the live hosts (and, for services and rc's DESIRED, the manifests).

The rows come from ``render.views``, the objects of ``-o json|yaml|name`` from
``render.objects``; this module picks the resource, gathers what they need and prints them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

import click

from reconciler.apply.converge import connect, load_source, observe
from reconciler.check.policy import OPEN_POLICY
from reconciler.cli import options as opt
from reconciler.cli.common import hosts_from_flag, selector_from_flag, warn_unreachable
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import print_diagnostics
from reconciler.core import labels as L
from reconciler.core.errors import InputError
from reconciler.core.model import HostState, Manifest, ObjectRef, as_map
from reconciler.core.selectors import Selector
from reconciler.engine.host import DockerHost
from reconciler.render.deployments import (
    DeploymentView,
    deployment_object,
    deployment_rows,
    deployment_views,
)
from reconciler.render.diagnostics import validation_summary
from reconciler.render.objects import (
    claim_object,
    node_object,
    object_list,
    object_names,
    pod_object,
    rc_object,
    service_object,
)
from reconciler.render.views import (
    LivePod,
    forwarder_views,
    host_rows,
    live_pods,
    pod_rows,
    rc_rows,
    service_rows,
    table_lines,
)
from reconciler.render.volumes import volume_rows
from reconciler.source.hosts import Host

#: the names kubectl accepts for each resource -> the one this command knows it by
RESOURCES = {
    "pods": "pods",
    "pod": "pods",
    "po": "pods",
    "rc": "rc",
    "replicationcontroller": "rc",
    "replicationcontrollers": "rc",
    "services": "services",
    "service": "services",
    "svc": "services",
    "hosts": "hosts",
    "host": "hosts",
    "nodes": "hosts",
    "volumes": "volumes",
    "volume": "volumes",
    "pvc": "volumes",
    "deployments": "deployments",
    "deployment": "deployments",
    "deploy": "deployments",
}


@cli.command("get")
@click.argument(
    "resource",
    type=click.Choice(sorted(RESOURCES)),
    metavar="pods|rc|services|deployments|hosts|volumes",
)
@opt.hosts()
@opt.instance()
@opt.source_paths()
@opt.exclude()
@opt.selector("Label selector, e.g. app=web,tier!=db.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(("table", "wide", "json", "yaml", "name")),
    default="table",
    show_default=True,
    help="table or wide: kubectl's columns; json or yaml: a Kubernetes List of Pod, "
    "ReplicationController, Service, Deployment (apps/v1), Node or PersistentVolumeClaim "
    "objects; name: kind/name per line (deployment.apps/NAME).",
)
def get_command(
    resource: str,
    hosts_file: str | None,
    instance: str,
    sources: tuple[str, ...],
    exclude: tuple[str, ...],
    selector: str | None,
    output: str,
) -> None:
    """List pods, replication controllers, services, deployments, hosts or volumes, read
    from the hosts.

    Services, the DESIRED column of rc and whether a claim's volume is Bound or Orphaned
    come from the manifests (--source, default .); deployments come from their rollout
    memory on the hosts. No value of a Secret is ever shown.
    """
    parsed = selector_from_flag(selector)
    kind = RESOURCES[resource]
    hosts = hosts_from_flag(hosts_file)
    runtimes = connect(hosts, instance)
    states = observe(runtimes, volumes=kind == "volumes")
    warn_unreachable(states)
    pods = live_pods(states, parsed)
    wide = output == "wide"
    now = time.time()
    if output in ("json", "yaml", "name"):
        if kind == "deployments":
            items = [deployment_object(view) for view in _deployments(states, parsed, now)]
        else:
            items = kube_objects(kind, pods, states, hosts, runtimes, sources, parsed, exclude)
        _print_objects(items, output)
        sys.exit(EXIT_OK if all(s.reachable for s in states.values()) else EXIT_INVALID)
    if kind == "deployments":
        _print_table(deployment_rows(_deployments(states, parsed, now), wide))
        sys.exit(EXIT_OK if all(s.reachable for s in states.values()) else EXIT_INVALID)
    if kind == "pods":
        restarts: dict[str, int] = {}
        for pod in pods:
            restarts.update(runtimes[pod.host].restart_counts(pod.apps))
        rows = pod_rows(pods, now, restarts, wide)
    elif kind == "hosts":
        versions = {}
        for name, runtime in runtimes.items():
            if states[name].reachable:
                try:
                    versions[name] = runtime.engine_version()
                except Exception:  # reported through REACHABLE/ERROR already
                    versions[name] = ""
        rows = host_rows(states, hosts, versions, wide)
    elif kind == "volumes":
        claims = {
            (m.namespace, m.name)
            for m in _manifests(sources, exclude)
            if m.kind == "PersistentVolumeClaim"
        }
        rows = volume_rows(states, claims, wide)
    else:
        manifests = _manifests(sources, exclude) if sources or kind == "services" else []
        if kind == "rc":
            rows = rc_rows(pods, manifests, now, wide)
        else:
            rows = service_rows(
                [m for m in manifests if parsed.matches(m.labels)],
                pods,
                wide,
                forwarder_views(states),
            )
    _print_table(rows)
    sys.exit(EXIT_OK if all(s.reachable for s in states.values()) else EXIT_INVALID)


def kube_objects(
    kind: str,
    pods: list[LivePod],
    states: dict[str, HostState],
    hosts: list[Host],
    runtimes: dict[str, DockerHost],
    sources: tuple[str, ...],
    selector: Selector,
    exclude: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The objects ``-o json|yaml|name`` prints (``render.objects``): pods and hosts from
    the live state, controllers and Services with their manifests' specs."""
    addresses = {h.name: h.address for h in hosts}
    if kind == "pods":
        restarts: dict[str, int] = {}
        for pod in pods:  # Docker's own restarts (crashes): only inspect has them
            restarts.update(runtimes[pod.host].restart_counts(pod.apps))
        return [pod_object(p, addresses.get(p.host, ""), restarts) for p in pods]
    if kind == "hosts":
        by_name = {h.name: h for h in hosts}
        result = []
        for name, state in sorted(states.items()):
            version = ""
            if state.reachable:
                with contextlib.suppress(Exception):  # reported through the Ready condition
                    version = runtimes[name].engine_version()
            count = sum(1 for p in pods if p.host == name)
            result.append(node_object(name, by_name.get(name), state, version, count))
        return result
    if kind == "volumes":
        claims = {
            (m.namespace, m.name)
            for m in _manifests(sources, exclude)
            if m.kind == "PersistentVolumeClaim"
        }
        return [
            claim_object(
                v, (v.labels.get(L.CLAIM_NAMESPACE, "default"), v.labels[L.CLAIM]) in claims
            )
            for name in sorted(states)
            for v in states[name].volumes
            if v.labels.get(L.CLAIM)
        ]
    manifests = _manifests(sources, exclude) if sources or kind == "services" else []
    if kind == "rc":
        wanted = {m.ref: m for m in manifests if m.kind == "ReplicationController"}
        owners: dict[ObjectRef, list[LivePod]] = {}
        for pod in pods:
            if pod.owner.kind == "ReplicationController":
                owners.setdefault(pod.owner, []).append(pod)
        return [
            rc_object(ref, wanted.get(ref), owners.get(ref, []))
            for ref in sorted(set(owners) | set(wanted))
        ]
    views = forwarder_views(states)
    result = []
    for m in sorted((m for m in manifests if m.kind == "Service"), key=lambda m: m.ref):
        if not selector.matches(m.labels):
            continue
        wanted_labels = as_map(as_map(m.body.get("spec")).get("selector"))
        endpoints = [
            p
            for p in pods
            if p.namespace == m.namespace
            and wanted_labels
            and all(p.labels.get(k) == v for k, v in wanted_labels.items())
            and p.is_ready
        ]
        result.append(service_object(m, views.get(m.ref), endpoints))
    return result


def _print_objects(items: list[dict[str, Any]], output: str) -> None:
    if output == "name":
        for name in object_names(items):
            click.echo(name)
    elif output == "json":
        click.echo(json.dumps(object_list(items), indent=4))
    else:
        import yaml

        click.echo(yaml.safe_dump(object_list(items), sort_keys=False), nl=False)


def _manifests(sources: tuple[str, ...], exclude: tuple[str, ...]) -> list[Manifest]:
    """The manifests of ``--source`` (default .); invalid ones exit 2, as rows built from
    broken manifests would be guesses."""
    try:
        # shown, not run: the policy is the service's to enforce, not the table's
        validation, files = load_source(list(sources) or ["."], policy=OPEN_POLICY, exclude=exclude)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    if not validation.valid:
        print_diagnostics(validation.errors)
        objects = len(validation.manifests)
        summary = validation_summary(validation.diagnostics, objects, files)
        click.echo(f"{summary}: fix them, or name the manifests with --source", err=True)
        sys.exit(EXIT_ERROR)
    return validation.manifests


def _print_table(rows: list[dict[str, Any]]) -> None:
    for line in table_lines(rows):
        click.echo(line)


def _deployments(
    states: dict[str, HostState], selector: Selector, now: float
) -> list[DeploymentView]:
    """Deployments as the hosts know them (their rollout memory and their pods)."""
    return [
        view
        for view in deployment_views(states, now)
        if selector.matches(view.memory.spec.get("labels") or {})
    ]
