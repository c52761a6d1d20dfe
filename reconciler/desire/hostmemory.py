"""What the reconciler remembers about hosts between passes: since when one has been
unreachable, and which pods it ran when last seen.

An unreachable host cannot be asked what it runs, so without memory its replicas would be
re-created elsewhere at once, and a host that was only briefly away would come back to find
its pods duplicated. With memory, its pods stay placed on it for ``--host-grace`` seconds;
after that, ReplicationController replicas are placed on the remaining hosts (bare Pods are
never moved, as in Kubernetes). When the host returns, the surplus copies are removed.

Pure: ``remember`` turns the last record and an observation into the next record.
``apply.state`` keeps it in a small JSON file per instance, so that separate ``apply`` runs
share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reconciler.core import labels as L
from reconciler.core.model import HostState


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host: unreachable since (epoch seconds, None when it answered last time), and the
    (namespace, pod) of every workload pod it ran when it last answered."""

    down_since: float | None = None
    pods: tuple[tuple[str, str], ...] = ()


def _pods_of(state: HostState) -> tuple[tuple[str, str], ...]:
    keys = {
        (c.labels.get(L.POD_NAMESPACE, ""), c.labels.get(L.POD, ""))
        for c in state.containers
        if c.labels.get(L.ROLE) == L.ROLE_INFRA
    }
    return tuple(sorted(keys))


def remember(
    previous: Mapping[str, HostRecord], live: Mapping[str, HostState], now: float
) -> dict[str, HostRecord]:
    """The record after observing ``live`` at ``now``. Hosts not observed keep their record."""
    result = dict(previous)
    for host, state in live.items():
        if state.reachable:
            result[host] = HostRecord(None, _pods_of(state))
        else:
            before = previous.get(host, HostRecord())
            since = before.down_since if before.down_since is not None else now
            result[host] = HostRecord(since, before.pods)
    return result


def after_changes(
    previous: Mapping[str, HostRecord],
    made: Iterable[tuple[str, tuple[str, str]]],
    removed: Iterable[tuple[str, tuple[str, str]]],
) -> dict[str, HostRecord]:
    """The record after an apply made and removed these pods ((host, (namespace, pod))),
    without observing again: a host that carried out a change answered."""
    pods = {host: set(record.pods) for host, record in previous.items()}
    for host, key in made:
        pods.setdefault(host, set()).add(key)
    for host, key in removed:
        pods.setdefault(host, set()).discard(key)
    touched = {host for host, _ in made} | {host for host, _ in removed}
    result = dict(previous)
    for host in touched:
        result[host] = HostRecord(None, tuple(sorted(pods[host])))
    return result


def within_grace(record: HostRecord, now: float, grace: float) -> bool:
    return record.down_since is not None and now - record.down_since < grace


def assume_lost(
    live: Mapping[str, HostState],
    memory: Mapping[str, HostRecord],
    lost: Iterable[str],
    now: float,
    grace: float,
) -> tuple[dict[str, HostState], dict[str, HostRecord]]:
    """``live`` and ``memory`` as they would be had each host of ``lost`` stopped answering
    longer than ``grace`` seconds ago: what ``diff --assume-down`` plans with.

    A lost host is observed as unreachable, and remembered with the pods it runs now (or,
    already unreachable, those it was remembered with), exactly as ``remember`` would have
    recorded it at its last answer; so the plan is the one ``apply`` would make after the
    host's real loss.
    """
    states = dict(live)
    records = dict(memory)
    for host in lost:
        state = live.get(host)
        if state is not None and state.reachable:
            pods = _pods_of(state)
        else:
            pods = memory.get(host, HostRecord()).pods
        states[host] = HostState(host, reachable=False, error="assumed down (--assume-down)")
        records[host] = HostRecord(now - grace - 1.0, pods)
    return states, records
