"""Fan-out on real engines: a pass over 20 namespace hosts against a pass over one.

Run from the repository root (root only: it brings up the machine's test hosts)::

    .venv/bin/python -m bench.fanout -v
    .venv/bin/python -m bench.fanout --hosts 20 --pods-per-host 20 --delays 0,2,10 --json

``scripts/testhosts up N`` (waiting for a test session that holds the hosts, and holding them
itself while it runs), then ``reconciler apply`` of two instances: *many*, one
ReplicationController of ``N x --pods-per-host`` pods over all N hosts, and *one*, one of
``--pods-per-host`` pods on h1 only. Then, in this process, the service's no-op pass as
``reconciler run`` makes it (connections kept open; observe every host with one list call,
then desired state and plan, which must come out empty), ``--repeat`` times each:

- ``one``: the pass of *one* (1 host, ``--pods-per-host`` pods);
- ``many``: the pass of *many* (N hosts at once, N x the pods): the target, <= 1.5x ``one``;
- ``serial``: the same N hosts observed one after the other (what a pass without fan-out
  would cost), measured in the same run as the peer that shows what the fan-out buys.

Each is measured with no added latency and again with ``--delays`` (milliseconds added to
every packet leaving each host, ``tc qdisc ... netem delay``, as on a network where engines
are not next door). With none added, every engine is on this machine: the N engines' list
work, and the reconciler's decoding and planning of N x the pods, share its CPUs — the
figure says what the machine's cores cost, not what waiting costs. With latency, waiting
dominates as it does across a network, and a pass that fans out waits once, not N times.

Everything it creates is removed (``reconciler down``, then ``scripts/testhosts down``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.scale_hosts import validated_manifests
from bench.services import (
    IMAGE,
    Bench,
    ensure_image,
    finish_run,
    fleet_manifests,
    hold_test_hosts,
    hosts_subset,
    last_line,
    start_run,
    target,
    testhosts,
)

TARGET = 1.5  # many / one, at most (issue 16)


class Pass:
    """One instance's no-op pass, as the service runs it: connections opened once, then
    observe (all hosts at once, or one after the other) + desired state + plan."""

    def __init__(self, instance: str, hosts_file: Path, source: Path, cidr: str) -> None:
        from reconciler.apply.converge import connect
        from reconciler.desire.settings import DEFAULT_INFRA_IMAGE, Settings
        from reconciler.forwarder.build import default_forwarder_image
        from reconciler.source.hosts import load_hosts

        self.hosts = load_hosts(str(hosts_file), {})
        self.manifests = validated_manifests(source.read_text(encoding="utf-8"))
        self.settings = Settings(
            instance=instance,
            infra_image=DEFAULT_INFRA_IMAGE,
            forwarder_image=default_forwarder_image(),
            cluster_cidr=cidr,
        )
        self.runtimes = connect(self.hosts, instance)
        self.cpu: dict[bool, list[float]] = {False: [], True: []}  # by ``serial``
        self.run(serial=False)  # connections opened, the plan checked empty

    def observe_serially(self) -> dict[str, Any]:
        return {name: runtime.observe(None) for name, runtime in self.runtimes.items()}

    def run(self, serial: bool) -> float:
        """One pass's wall time (its CPU time in this process added to ``self.cpu``)."""
        from reconciler.apply.converge import make_plan, observe

        cpu = time.process_time()
        started = time.perf_counter()
        live = self.observe_serially() if serial else observe(self.runtimes)
        _, the_plan = make_plan(self.manifests, self.hosts, live, self.settings)
        seconds = time.perf_counter() - started
        self.cpu[serial].append(time.process_time() - cpu)
        unreachable = [n for n, s in live.items() if not s.reachable]
        if unreachable or the_plan.actions:
            raise RuntimeError(
                f"{self.settings.instance}: not a no-op pass: unreachable {unreachable}, "
                f"actions {[str(a) for a in the_plan.actions[:3]]}"
            )
        return seconds

    def close(self) -> None:
        for runtime in self.runtimes.values():
            with contextlib.suppress(Exception):
                runtime.close()


async def _pump(reader: Any, writer: Any, delay: float) -> None:
    """Bytes from ``reader`` to ``writer``, each chunk delivered ``delay`` s after it came:
    latency without a bandwidth limit (chunks are not delayed one after another)."""
    import asyncio

    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    queue.put_nowait((0.0, b""))
    await delivering


async def _serve_delayed(targets: Sequence[tuple[str, int]], milliseconds: int) -> None:
    import asyncio

    one_way = milliseconds / 2000  # half each way: the round trip gains ``milliseconds``

    def handler(address: str, port: int) -> Any:
        async def handle(reader: Any, writer: Any) -> None:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(address, port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(
                _pump(reader, upstream_writer, one_way),
                _pump(upstream_reader, writer, one_way),
                return_exceptions=True,
            )

        return handle

    servers = [
        await asyncio.start_server(handler(address, port), "127.0.0.1", 0)
        for address, port in targets
    ]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps(ports), flush=True)
    await asyncio.Event().wait()  # until killed


@contextlib.contextmanager
def delayed(hosts_file: Path, milliseconds: int, into: Path) -> Iterator[Path]:
    """A hosts file whose engines are reached through a proxy on 127.0.0.1 that adds
    ``milliseconds`` to every round trip (a separate process, stopped on exit)."""
    if not milliseconds:
        yield hosts_file
        return
    hosts = yaml.safe_load(hosts_file.read_text())["hosts"]
    targets = []
    for host in hosts:
        address, _, port = str(host["url"]).removeprefix("tcp://").rpartition(":")
        targets.append(f"{address}:{port}")
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fanout",
            "--proxy",
            str(milliseconds),
            "--to",
            ",".join(targets),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proxy.stdout is not None
        ports = json.loads(proxy.stdout.readline())
        proxied = [
            {**host, "url": f"tcp://127.0.0.1:{port}"}
            for host, port in zip(hosts, ports, strict=True)
        ]
        into.write_text(yaml.safe_dump({"hosts": proxied}, sort_keys=False))
        yield into
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def per_host_pods(instance: str, hosts_file: Path) -> dict[str, int]:
    """Pods (infra containers) of ``instance`` on each host."""
    from reconciler.apply.converge import connect, observe
    from reconciler.core import labels as L
    from reconciler.source.hosts import load_hosts

    live = observe(connect(load_hosts(str(hosts_file), {}), instance))
    return {
        name: sum(1 for c in state.containers if c.labels.get(L.ROLE) == L.ROLE_INFRA)
        for name, state in live.items()
    }


def passes_row(passes: Mapping[str, Pass], delay: int, repeat: int) -> dict[str, Any]:
    """The three passes, interleaved so that all see the same load; medians, ratios, and the
    CPU time this process spent per pass."""
    samples: dict[str, list[float]] = {"one": [], "many": [], "serial": []}
    for _ in range(2):
        for key, each, one_by_one in (
            ("one", passes["one"], False),
            ("many", passes["many"], False),
            ("serial", passes["many"], True),
        ):
            samples[key].append(median_of(lambda: each.run(one_by_one), repeat))  # noqa: B023
    one, many, serial = (statistics.median(samples[k]) for k in ("one", "many", "serial"))
    return {
        "delay_ms": delay,
        "one_s": round(one, 4),
        "many_s": round(many, 4),
        "serial_s": round(serial, 4),
        "ratio": round(many / one, 2),
        "serial_ratio": round(serial / one, 2),
        "cpu_one_s": round(statistics.median(passes["one"].cpu[False]), 4),
        "cpu_many_s": round(statistics.median(passes["many"].cpu[False]), 4),
    }


def median_of(function: Callable[[], float], repeat: int) -> float:
    return statistics.median(function() for _ in range(repeat))


def measure(
    bench: Bench, hosts_file: Path, count: int, per_host: int, delays: Sequence[int], repeat: int
) -> dict[str, Any]:
    hosts = yaml.safe_load(hosts_file.read_text())["hosts"]
    names = [str(h["name"]) for h in hosts]
    one_file = bench.path("fanout", "hosts-h1.yaml")
    one_file.write_text(hosts_subset(hosts_file.read_text(), [names[0]]))
    ensure_image(bench, IMAGE, str(hosts_file))
    sources = {}
    for label, replicas in (("many", count * per_host), ("one", per_host)):
        sources[label] = bench.path("fanout", label, "fleet.yaml")
        sources[label].write_text(
            fleet_manifests(label, replicas, IMAGE, node_port=31090 if label == "many" else 31091)
        )
    many = bench.instance("many", str(hosts_file))
    one = bench.instance("one", str(one_file))
    result: dict[str, Any] = {"hosts": count, "pods_per_host": per_host}
    bench.log(f"fanout: apply {count * per_host} pods over {count} hosts")
    result["apply_many_s"] = round(bench.apply(sources["many"].parent, many), 1)
    bench.log(f"fanout: apply {per_host} pods on {names[0]}")
    result["apply_one_s"] = round(bench.apply(sources["one"].parent, one), 1)
    result["pods_on_each_host"] = per_host_pods(many, hosts_file)
    bench.log("fanout: 30 s for the engines to settle after creating their containers")
    time.sleep(30)
    rows = []
    for delay in delays:
        bench.log(f"fanout: passes with {delay} ms added to each round trip")
        with (
            delayed(hosts_file, delay, bench.path("fanout", f"many-{delay}.yaml")) as many_file,
            delayed(one_file, delay, bench.path("fanout", f"one-{delay}.yaml")) as one_proxied,
        ):
            passes = {
                "many": Pass(many, many_file, sources["many"], bench.instances[many][1]),
                "one": Pass(one, one_proxied, sources["one"], bench.instances[one][1]),
            }
            try:
                rows.append(passes_row(passes, delay, repeat))
            finally:
                for each in passes.values():
                    each.close()
    result["passes"] = rows
    result["loadavg_after_passes"] = [round(x, 2) for x in os.getloadavg()]
    return result


def report(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("passes") or []
    if "skipped" in result or "hosts" not in result:
        print(f"fan-out: not measured ({result.get('skipped', 'the run failed')})")
    else:
        print(
            f"{result['hosts']} hosts x {result['pods_per_host']} pods (applied in "
            f"{result['apply_many_s']} s; 1 host in {result['apply_one_s']} s); pods per host "
            f"{sorted(set(result['pods_on_each_host'].values()))}"
        )
        print(
            f"{'added latency':>14} {'1 host':>9} {'N at once':>10} {'N serially':>11} "
            f"{'ratio':>6} {'serial ratio':>13}"
        )
        for row in rows:
            print(
                f"{row['delay_ms']:>11} ms {row['one_s'] * 1000:>7.1f}ms "
                f"{row['many_s'] * 1000:>8.1f}ms {row['serial_s'] * 1000:>9.1f}ms "
                f"{row['ratio']:>5.2f}x {row['serial_ratio']:>12.2f}x"
            )
    if not rows:
        return [target(f"pass on N hosts <= {TARGET}x one", None, "<=", TARGET)]
    return [
        target(f"pass on N hosts, +{row['delay_ms']} ms", row["ratio"], "<=", TARGET)
        for row in rows
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--pods-per-host", type=int, default=20)
    parser.add_argument("--delays", default="0,2,10", help="ms added to each round trip")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--wait", type=float, default=1800, help="s to wait for the test hosts")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--proxy", type=int, help=argparse.SUPPRESS)  # the delaying proxy
    parser.add_argument("--to", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.proxy is not None:
        import asyncio

        targets = [(a, int(p)) for a, _, p in (t.rpartition(":") for t in args.to.split(","))]
        asyncio.run(_serve_delayed(targets, args.proxy))
        return 0
    delays = [int(x) for x in args.delays.split(",") if x.strip()]
    bench = Bench(verbose=args.verbose)
    results = start_run("fanout", bench.run_id)
    failure = ""
    found: dict[str, Any] = {}
    try:
        if os.geteuid() != 0:
            found = {"skipped": "scripts/testhosts needs root"}
        else:
            ensure_image(bench, IMAGE)  # testhosts copies the local sample/* images
            with hold_test_hosts(args.wait, bench.log):
                try:
                    bench.log(f"scripts/testhosts up {args.hosts}")
                    started = time.perf_counter()
                    hosts_file = Path(last_line(testhosts("up", str(args.hosts), timeout=900)))
                    bench.log(f"  up in {time.perf_counter() - started:.1f} s")
                    found = measure(
                        bench, hosts_file, args.hosts, args.pods_per_host, delays, args.repeat
                    )
                finally:
                    for instance in list(bench.instances):
                        bench.forget(instance)
                        del bench.instances[instance]
                    testhosts("down", timeout=900)
    except (RuntimeError, TimeoutError, OSError) as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    results["fanout"] = found
    results["leftovers"] = bench.cleanup()
    return finish_run(bench, results, failure, lambda r: report(r["fanout"]), args.json, 44)


if __name__ == "__main__":
    sys.exit(main())
