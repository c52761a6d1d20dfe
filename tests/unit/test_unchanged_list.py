"""A host whose list answer is byte for byte the last one is not decoded again
(``engine.client.Unchanged``): a steady pass reuses the state; any change is seen.

Against the simulated engine (``bench.fake_engine``: the Engine API over real HTTP), with
the real ``DockerHost``; no Docker needed.
"""

from __future__ import annotations

from bench.fake_engine import FakeEngine
from reconciler.core import labels as L
from reconciler.engine.host import DockerHost
from reconciler.source.hosts import Host

INSTANCE = "memo"


def _ours(pod: str) -> dict[str, str]:
    return {
        L.MANAGED_BY: L.MANAGED_BY_VALUE,
        L.INSTANCE: INSTANCE,
        L.OWNER_KIND: "Pod",
        L.OWNER_NAMESPACE: "default",
        L.OWNER_NAME: pod,
        L.POD: pod,
        L.POD_NAMESPACE: "default",
        L.CONTAINER: L.INFRA_CONTAINER,
        L.ROLE: L.ROLE_INFRA,
    }


def test_an_identical_answer_gives_the_same_state_and_a_change_a_new_one() -> None:
    with FakeEngine() as engine:
        engine.add("memo_default_a_POD", "pause", _ours("a"))
        host = DockerHost(Host("h1", engine.url, "127.0.0.1"), instance=INSTANCE)
        try:
            first = host.observe()
            second = host.observe()
            assert second is first  # not decoded again
            assert [c.name for c in first.containers] == ["memo_default_a_POD"]

            engine.add("memo_default_b_POD", "pause", _ours("b"))
            third = host.observe()
            assert third is not second
            assert sorted(c.name for c in third.containers) == [
                "memo_default_a_POD",
                "memo_default_b_POD",
            ]

            entry = engine.containers[engine.names["memo_default_a_POD"]]
            entry["State"], entry["Status"] = "exited", "Exited (1) 1 second ago"
            fourth = host.observe()
            assert fourth is not third
            states = {c.name: c.state for c in fourth.containers}
            assert states["memo_default_a_POD"] == "exited"
            assert host.observe() is fourth
            assert engine.requests["GET /containers/json"] == 5  # every pass still asks
        finally:
            host.close()


def test_hosts_do_not_share_what_they_remember() -> None:
    with FakeEngine("one") as one, FakeEngine("two") as two:
        for engine in (one, two):
            engine.add("memo_default_a_POD", "pause", _ours("a"))  # the same bytes on both
        hosts = [
            DockerHost(Host(name, engine.url, "127.0.0.1"), instance=INSTANCE)
            for name, engine in (("h1", one), ("h2", two))
        ]
        try:
            states = [h.observe() for h in hosts]
            assert [s.host for s in states] == ["h1", "h2"]
            assert {c.host for c in states[1].containers} == {"h2"}
        finally:
            for host in hosts:
                host.close()
