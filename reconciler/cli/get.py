"""``reconciler get``: pods, replication controllers, services or hosts as kubectl lists
them, read from the live hosts (and, for services and rc's DESIRED, the manifests).

The rows come from ``render.views``; this module picks the resource, gathers what its
rows need and prints them as a table or JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
import yaml

from reconciler.apply.converge import connect, load_source, observe
from reconciler.check.policy import OPEN_POLICY
from reconciler.cli import options as opt
from reconciler.cli.common import hosts_from_flag, selector_from_flag, warn_unreachable
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import print_diagnostics
from reconciler.core.errors import InputError
from reconciler.core.model import HostState, Manifest
from reconciler.core.selectors import Selector
from reconciler.render.deployments import (
    deployment_object,
    deployment_rows,
    deployment_views,
    kube_list,
)
from reconciler.render.diagnostics import validation_summary
from reconciler.render.views import (
    forwarder_views,
    host_rows,
    live_pods,
    pod_rows,
    rc_rows,
    service_rows,
    table_lines,
)
from reconciler.render.volumes import volume_rows

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
@opt.selector("Label selector, e.g. app=web,tier!=db.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(("table", "wide", "json", "yaml", "name")),
    default="table",
    show_default=True,
    help="deployments: json and yaml are a Kubernetes List of apps/v1 Deployments, name is "
    "deployment.apps/NAME (as kubectl).",
)
def get_command(
    resource: str,
    hosts_file: str | None,
    instance: str,
    sources: tuple[str, ...],
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
    if kind == "deployments":
        _print_deployments(states, parsed, output, now)
        sys.exit(EXIT_OK if all(s.reachable for s in states.values()) else EXIT_INVALID)
    if output == "name":
        raise click.UsageError("-o name is for deployments (so far); use -o json")
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
            (m.namespace, m.name) for m in _manifests(sources) if m.kind == "PersistentVolumeClaim"
        }
        rows = volume_rows(states, claims, wide)
    else:
        manifests = _manifests(sources) if sources or kind == "services" else []
        if kind == "rc":
            rows = rc_rows(pods, manifests, now, wide)
        else:
            rows = service_rows(
                [m for m in manifests if parsed.matches(m.labels)],
                pods,
                wide,
                forwarder_views(states),
            )
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(rows, sort_keys=False), nl=False)
    else:
        _print_table(rows)
    sys.exit(EXIT_OK if all(s.reachable for s in states.values()) else EXIT_INVALID)


def _manifests(sources: tuple[str, ...]) -> list[Manifest]:
    """The manifests of ``--source`` (default .); invalid ones exit 2, as rows built from
    broken manifests would be guesses."""
    try:
        # shown, not run: the policy is the service's to enforce, not the table's
        validation, files = load_source(list(sources) or ["."], policy=OPEN_POLICY)
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


def _print_deployments(
    states: dict[str, HostState], selector: Selector, output: str, now: float
) -> None:
    """Deployments as the hosts know them (their rollout memory and their pods)."""
    views = [
        view
        for view in deployment_views(states, now)
        if selector.matches(view.memory.spec.get("labels") or {})
    ]
    if output in ("json", "yaml"):
        listed = kube_list([deployment_object(view) for view in views])
        if output == "json":
            click.echo(json.dumps(listed, indent=4))
        else:
            click.echo(yaml.safe_dump(listed, sort_keys=False), nl=False)
    elif output == "name":
        for view in views:
            click.echo(f"deployment.apps/{view.ref.name}")
    else:
        _print_table(deployment_rows(views, output == "wide"))
