"""``reconciler down``: remove the pods an instance owns, all of them or those matching ``-l``.

It asks first on a terminal and wants ``--yes`` elsewhere; it never touches anything
without the instance's labels. Once nothing of the instance is left on a host, the
instance's network there goes too.
"""

from __future__ import annotations

import sys

import click

from reconciler.apply.converge import apply_plan, connect, observe, remove_volumes
from reconciler.cli import options as opt
from reconciler.cli.common import hosts_from_flag, selector_from_flag, warn_unreachable
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_results, echo_styled, echo_volume_removals
from reconciler.core.errors import ApplyError, HostUnavailable
from reconciler.desire.services import cluster_network
from reconciler.engine.host import DockerHost
from reconciler.plan.live import group_pods, owner_of
from reconciler.plan.planner import removal_plan
from reconciler.plan.rollout_memory import marker_owner
from reconciler.render.plans import plan_text_lines
from reconciler.render.views import claim_volumes, live_pods


@cli.command("down")
@opt.hosts()
@opt.instance()
@opt.grace_period()
@opt.selector("Only pods whose labels match (as kubectl delete -l app=NAME).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--volumes",
    "with_volumes",
    is_flag=True,
    help="Also remove the PersistentVolumeClaims' volumes (their data): all of the "
    "instance's, or with -l those the removed pods mount.",
)
def down_command(
    hosts_file: str | None,
    instance: str,
    grace_period: int,
    selector: str | None,
    yes: bool,
    with_volumes: bool,
) -> None:
    """Remove the pods this instance owns (all of them, or those matching -l).

    Asks first on a terminal; elsewhere --yes is required. Never touches anything
    without this instance's labels. Claims' volumes (data) go only with --volumes.
    """
    parsed = selector_from_flag(selector)
    hosts = hosts_from_flag(hosts_file)
    runtimes = connect(hosts, instance, grace_seconds=grace_period)
    states = observe(runtimes, volumes=with_volumes)
    pods = live_pods(states, parsed, forwarders=True)
    the_plan = removal_plan(pods)
    volumes = claim_volumes(states, pods if selector else None) if with_volumes else []
    warn_unreachable(states)
    if not the_plan.actions and not volumes:
        _remove_idle_networks(runtimes, instance)
        click.echo("nothing to remove")
        sys.exit(EXIT_OK)
    echo_styled(plan_text_lines(the_plan, ""))
    for volume in volumes:
        click.echo(f"  - remove   volume {volume.name} on {volume.host} (its data)")
    if not yes:
        if not sys.stdin.isatty():
            click.echo("refusing to remove without --yes when not on a terminal", err=True)
            sys.exit(EXIT_ERROR)
        click.confirm(
            f"remove {len(the_plan.actions)} pod(s) and {len(volumes)} volume(s)?", abort=True
        )
    report = apply_plan(the_plan, runtimes)
    echo_results(report)
    failed = echo_volume_removals(remove_volumes(volumes, runtimes))
    _remove_idle_networks(runtimes, instance)
    sys.exit(EXIT_OK if report.ok and not failed else EXIT_INVALID)


def _remove_idle_networks(runtimes: dict[str, DockerHost], instance: str) -> None:
    """The instance's network (and its probe tools volume) go once nothing of the instance
    is left on a host; so does the rollout memory of every Deployment none of whose pods is
    left anywhere."""
    network = cluster_network(instance)
    states = observe(runtimes)
    left = {
        owner_of(containers)
        for state in states.values()
        for containers in group_pods(state.containers).values()
    }
    for name, state in states.items():
        if not state.reachable:
            continue
        for deployment in sorted({marker_owner(m.labels) for m in state.rollouts} - left):
            try:
                runtimes[name].forget_rollout(deployment)
            except (HostUnavailable, ApplyError) as exc:
                click.echo(f"warning: rollout memory of {deployment} on {name}: {exc}", err=True)
    for name, state in states.items():
        if state.reachable and not state.containers:
            try:
                runtimes[name].remove_state_marker()
                runtimes[name].probe_tools.remove()
                if runtimes[name].remove_network(network):
                    click.echo(f"removed network {network.name} on {name}")
            except (HostUnavailable, ApplyError) as exc:
                click.echo(f"warning: network {network.name} on {name}: {exc}", err=True)
