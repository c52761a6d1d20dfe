"""What the verbs that talk to hosts read first: hosts, settings, validated manifests, a plan.

Each helper turns the flags into what the stages below take, and a bad flag or unreadable
input into the CLI's answer (a usage error, or the diagnostics and exit 2). ``diff`` and
``apply`` go as far as a computed plan (:func:`compute_plan`); ``run`` needs only the
hosts and settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import click

from reconciler.apply.converge import (
    connect,
    load_source,
    make_plan,
    observe_and_remember,
    source_revision,
    wants_volumes,
)
from reconciler.apply.observer import DEFAULT_TIMEOUT as DEFAULT_OBSERVE_TIMEOUT
from reconciler.apply.observer import Observer
from reconciler.apply.state import state_dir
from reconciler.check.validate import ValidationResult
from reconciler.cli.admission import Admission
from reconciler.cli.group import EXIT_ERROR
from reconciler.cli.output import print_diagnostics
from reconciler.core.errors import HostsFileError, InputError, SelectorError
from reconciler.core.model import HostState
from reconciler.core.selectors import Selector, parse_selector
from reconciler.desire.hostmemory import HostRecord, assume_lost
from reconciler.desire.settings import DesiredState, Settings
from reconciler.engine.host import DockerHost
from reconciler.plan.model import Plan
from reconciler.render.diagnostics import validation_summary
from reconciler.source.hosts import Host, load_hosts
from reconciler.source.keys import Keyring, load_keyring


def hosts_from_flag(hosts_file: str | None) -> list[Host]:
    """The hosts of ``--hosts`` (or the default one); a bad hosts file exits 2."""
    try:
        return load_hosts(hosts_file, os.environ)
    except HostsFileError as exc:
        print_diagnostics(exc.diagnostics)
        raise SystemExit(EXIT_ERROR) from exc


def settings_from_flags(
    instance: str,
    infra_image: str,
    forwarder_image: str,
    cluster_cidr: str,
    host_grace: float = 60.0,
) -> Settings:
    """The desired-state settings; a malformed ``--cluster-cidr`` is a usage error now."""
    settings = Settings(
        instance=instance,
        infra_image=infra_image,
        forwarder_image=forwarder_image,
        cluster_cidr=cluster_cidr,
        host_grace=host_grace,
    )
    try:
        settings.network  # noqa: B018 - validates the CIDR before anything runs
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster-cidr") from exc
    return settings


def selector_from_flag(text: str | None) -> Selector:
    """``-l`` parsed; a malformed selector is a usage error."""
    try:
        return parse_selector(text)
    except SelectorError as exc:
        raise click.UsageError(str(exc)) from exc


def keyring_from_flags(key_file: str | None) -> Keyring:
    """The age identities of ``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE`` and
    ``--sops-age-key-file``; an unreadable or malformed key file is a usage error."""
    try:
        return load_keyring(os.environ, [key_file] if key_file else [])
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc


def validated_source(
    sources: tuple[str, ...],
    keyring: Keyring | None = None,
    admission: Admission | None = None,
    exclude: tuple[str, ...] = (),
) -> tuple[ValidationResult, str]:
    """Load, decrypt and validate against the operator's ``admission`` (policy, limits,
    ``--max-pods``), less what ``exclude`` and ``.sourceignore`` files leave out; on any
    error print the messages and exit 2 (a Secret that cannot be decrypted is one: nothing
    is applied)."""
    paths = list(sources) or ["."]
    admitted = admission or Admission()
    try:
        result, files = load_source(
            paths,
            keyring if keyring is not None else Keyring(),
            policy=admitted.policy,
            limits=admitted.limits,
            max_pods=admitted.max_pods,
            exclude=exclude,
        )
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    if not result.valid:
        print_diagnostics(result.diagnostics)
        click.echo(
            f"{validation_summary(result.diagnostics, len(result.manifests), files)}: "
            "nothing applied",
            err=True,
        )
        raise SystemExit(EXIT_ERROR)
    print_diagnostics(result.warnings)
    return result, source_revision(paths)


def warn_unreachable(states: dict[str, HostState]) -> None:
    """A warning on stderr for each host that did not answer."""
    for name, state in sorted(states.items()):
        if not state.reachable:
            click.echo(f"warning: host {name} unreachable: {state.error}", err=True)


@dataclass
class Computed:
    """A plan and everything that went into it, for ``apply`` to carry out."""

    validation: ValidationResult
    plan: Plan
    revision: str
    runtimes: dict[str, DockerHost]
    hosts: list[Host]
    settings: Settings
    prune: bool
    host_memory: dict[str, HostRecord]
    now: float
    desired: DesiredState | None = None
    live: dict[str, HostState] = field(default_factory=dict)  # as observed, no assumption
    #: what observed the hosts: apply's later looks go through it (``apply.observer``)
    observer: Observer = field(default_factory=Observer)


def compute_plan(
    sources: tuple[str, ...],
    hosts_file: str | None,
    settings: Settings,
    prune: bool,
    grace: int = 10,
    assume_down: Sequence[str] = (),
    key_file: str | None = None,
    prune_volumes: bool = False,
    list_volumes: bool = False,
    admission: Admission | None = None,
    exclude: tuple[str, ...] = (),
    observe_timeout: float = DEFAULT_OBSERVE_TIMEOUT,
) -> Computed:
    """Validated manifests, the hosts observed (and remembered), and the plan between them.

    ``assume_down``: hosts to plan as lost past their grace period (``diff --assume-down``);
    the memory file keeps what was really observed. ``admission``: what the operator lets
    the source ask of the hosts (``cli.admission``). ``exclude``: ``--exclude`` globs.
    ``observe_timeout``: seconds each host has to answer (``--observe-timeout``).
    """
    validation, revision = validated_source(
        sources, keyring_from_flags(key_file), admission, exclude
    )
    hosts = hosts_from_flag(hosts_file)
    unknown = sorted(set(assume_down) - {h.name for h in hosts})
    if unknown:
        raise click.UsageError(
            f"--assume-down {', '.join(unknown)}: no such host "
            f"(hosts: {', '.join(h.name for h in hosts)})"
        )
    runtimes = connect(hosts, settings.instance, revision, grace_seconds=grace)
    wanted = True if list_volumes or prune_volumes else wants_volumes(validation.manifests)
    observer = Observer(observe_timeout)
    live, memory, now = observe_and_remember(
        runtimes, settings.instance, state_dir(), volumes=wanted, observer=observer
    )
    planned, remembered = live, memory
    if assume_down:
        planned, remembered = assume_lost(live, memory, assume_down, now, settings.host_grace)
    desired, the_plan = make_plan(
        validation.manifests,
        hosts,
        planned,
        settings,
        prune=prune,
        host_memory=remembered,
        now=now,
        prune_volumes=prune_volumes,
        commit=revision,
    )
    return Computed(
        validation,
        the_plan,
        revision,
        runtimes,
        hosts,
        settings,
        prune,
        memory,
        now,
        desired,
        live,
        observer,
    )
