"""``reconciler down``: remove the pods an instance owns, all of them or those matching ``-l``.

It asks first on a terminal and wants ``--yes`` elsewhere; it never touches anything
without the instance's labels. Once nothing of the instance is left on a host, the
instance's network there goes too.
"""

from __future__ import annotations

import sys

import click

from reconciler.apply.converge import apply_plan, connect, observe
from reconciler.cli import options as opt
from reconciler.cli.common import hosts_from_flag, selector_from_flag, warn_unreachable
from reconciler.cli.group import EXIT_ERROR, EXIT_INVALID, EXIT_OK, cli
from reconciler.cli.output import echo_results, echo_styled
from reconciler.core.errors import ApplyError, HostUnavailable
from reconciler.desire.services import cluster_network
from reconciler.engine.host import DockerHost
from reconciler.plan.live import group_pods, owner_of
from reconciler.plan.planner import removal_plan
from reconciler.plan.rollout_memory import marker_owner
from reconciler.render.plans import plan_text_lines
from reconciler.render.views import live_pods


@cli.command("down")
@opt.hosts()
@opt.instance()
@opt.grace_period()
@opt.selector("Only pods whose labels match (as kubectl delete -l app=NAME).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def down_command(
    hosts_file: str | None, instance: str, grace_period: int, selector: str | None, yes: bool
) -> None:
    """Remove the pods this instance owns (all of them, or those matching -l).

    Asks first on a terminal; elsewhere --yes is required. Never touches anything
    without this instance's labels.
    """
    parsed = selector_from_flag(selector)
    hosts = hosts_from_flag(hosts_file)
    runtimes = connect(hosts, instance, grace_seconds=grace_period)
    states = observe(runtimes)
    the_plan = removal_plan(live_pods(states, parsed, forwarders=True))
    warn_unreachable(states)
    if not the_plan.actions:
        _remove_idle_networks(runtimes, instance)
        click.echo("nothing to remove")
        sys.exit(EXIT_OK)
    echo_styled(plan_text_lines(the_plan, ""))
    if not yes:
        if not sys.stdin.isatty():
            click.echo("refusing to remove without --yes when not on a terminal", err=True)
            sys.exit(EXIT_ERROR)
        click.confirm(f"remove {len(the_plan.actions)} pod(s)?", abort=True)
    report = apply_plan(the_plan, runtimes)
    echo_results(report)
    _remove_idle_networks(runtimes, instance)
    sys.exit(EXIT_OK if report.ok else EXIT_INVALID)


def _remove_idle_networks(runtimes: dict[str, DockerHost], instance: str) -> None:
    """The instance's network goes once nothing of the instance is left on a host; so does
    the rollout memory of every Deployment none of whose pods is left anywhere."""
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
                if runtimes[name].remove_network(network):
                    click.echo(f"removed network {network.name} on {name}")
            except (HostUnavailable, ApplyError) as exc:
                click.echo(f"warning: network {network.name} on {name}: {exc}", err=True)
