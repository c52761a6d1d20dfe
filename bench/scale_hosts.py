"""Scale across hosts and over time: fan-out, one change among many, memory, the CLI's floor.

Run by ``bench.scale`` (``--hosts-only`` for just these). Every engine is a simulated one
(``bench.fake_engine``: the Engine API over real HTTP, seeded through the reconciler's own
translation), so the sizes fit this machine; the code under test cannot tell.

- **fan-out**: a pass (observe + desired + plan) over 20 engines with 20 pods each, against
  one such engine; and the same 20 with one more host that black-holes packets (a listener
  whose accept queue is full): when each good host's observation came back, against the
  run without it (nothing else may wait for the hole), and what the whole pass waited for
  the hole (``apply.observer``): the first pass after it went dark (the connect timeout or
  the observation timeout, whichever is shorter), and with ``--observe-timeout 1`` the
  first pass and the later ones (its observation in flight, its answer used, asked again).
- **one change**: the image of one bare Pod changes among 10 and among 10,000 in-sync pods
  (3 engines): the time ``converge`` takes to apply it (the plan given), and the ratio.
- **memory**: the service's pass (observe, plan, converge: ``apply.converge`` as the
  daemon runs it) repeated in a fresh process: peak RSS at 10,000 pods, and RSS after the
  first tenth and after the last of ``--passes`` passes at 1,000 pods (a leak shows as
  growth).
- **CLI floor**: a no-op ``reconciler diff`` (a fresh interpreter) against 1,100 containers
  on one engine and spread over 3, and its floor measured in the same run: interpreter
  start-up (``python -c pass``) plus one list call per host (at once, from a warm process).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import verdicts
from bench.fake_engine import FakeEngine
from bench.scale import manifests_text, peak_rss_mb


def validated_manifests(text: str) -> list[Any]:
    from reconciler.check.validate import validate
    from reconciler.source.load import parse_text

    result = validate(parse_text(text, "scale.yaml"))
    assert result.valid, result.errors[:3]
    return list(result.manifests)


def _settings(instance: str = "scale") -> Any:
    from reconciler.desire.settings import Settings

    return Settings(instance=instance, forwarder_image="reconciler/forwarder:scale")


@contextlib.contextmanager
def engines(count: int, manifests: Sequence[Any], instance: str = "scale") -> Iterator[list[Any]]:
    """``count`` simulated engines seeded in sync with ``manifests``; yields their Hosts."""
    from reconciler.desire.compute import compute_desired
    from reconciler.source.hosts import Host

    started = [FakeEngine(f"h{i}").start() for i in range(count)]
    try:
        hosts = [
            Host(f"h{i}", e.url, f"10.231.{i // 200}.{11 + i % 200}") for i, e in enumerate(started)
        ]
        seeded = compute_desired(manifests, hosts, {}, _settings(instance))
        for engine, host in zip(started, hosts, strict=True):
            engine.seed((p for p in seeded.pods if p.host == host.name), instance)
        yield hosts
    finally:
        for engine in started:
            engine.stop()


@contextlib.contextmanager
def black_hole() -> Iterator[int | None]:
    """A port that never answers a SYN (a full accept queue), or None where the kernel
    answers anyway. The integration tests' ``black_hole`` fixture is this one too."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(socket.socket())
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = int(server.getsockname()[1])
        for _ in range(8):
            probe = socket.socket()
            probe.setblocking(False)
            probe.connect_ex(("127.0.0.1", port))
            _, writable, _ = select.select([], [probe], [], 0.5)
            if not writable:
                probe.close()
                yield port
                return
            stack.enter_context(probe)  # it got in: one more in the queue
        yield None


class _Timed:
    """A host runtime whose observation time is recorded (the bench's, not the code's)."""

    def __init__(self, runtime: Any, start: list[float], done: dict[str, float]) -> None:
        self.runtime, self.start, self.done = runtime, start, done

    def observe(self, volumes: bool | None = None) -> Any:
        state = self.runtime.observe(volumes)
        self.done[self.runtime.host.name] = time.perf_counter() - self.start[0]
        return state


def _pass_time(hosts: Sequence[Any], manifests: Sequence[Any], repeat: int) -> float:
    from reconciler.apply.converge import connect, make_plan, observe

    runtimes = connect(hosts, "scale")
    observe(runtimes)  # connections opened
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        live = observe(runtimes)
        _, the_plan = make_plan(manifests, hosts, live, _settings())
        times.append(time.perf_counter() - started)
        assert not the_plan.actions, the_plan.actions[:2]
    return statistics.median(times)


def fan_out(hosts: int = 20, pods_per_host: int = 20, repeat: int = 5) -> dict[str, Any]:

    one_manifests = validated_manifests(manifests_text(pods_per_host, templates=pods_per_host))
    with engines(1, one_manifests) as one_host:
        one = _pass_time(one_host, one_manifests, repeat)
    many_manifests = validated_manifests(manifests_text(hosts * pods_per_host, templates=hosts))
    with engines(hosts, many_manifests) as many_hosts:
        many = _pass_time(many_hosts, many_manifests, repeat)
        result: dict[str, Any] = {
            "hosts": hosts,
            "pods_per_host": pods_per_host,
            "pass_one_s": round(one, 4),
            "pass_many_s": round(many, 4),
            "ratio": round(many / one, 2),
        }
        with black_hole() as port:
            if port is None:
                result["black_hole"] = "not measured (the kernel answers a full queue)"
                return result
            result["black_hole"] = _with_hole(many_hosts, port)
    return result


def _with_hole(many_hosts: Sequence[Any], port: int) -> dict[str, Any]:
    """The 20 engines observed without and with a black-holed one (see the docstring)."""
    from reconciler.apply.converge import connect, observe
    from reconciler.apply.observer import Observer
    from reconciler.source.hosts import Host

    hole = Host("hole", f"tcp://127.0.0.1:{port}", "127.0.0.1")
    start: list[float] = [0.0]
    without: dict[str, float] = {}
    runtimes = connect(many_hosts, "scale")
    observe(runtimes)
    start[0] = time.perf_counter()
    observe({n: _Timed(r, start, without) for n, r in runtimes.items()})
    with_hole: dict[str, float] = {}
    runtimes = {**runtimes, **connect([hole], "scale")}
    timed = {n: _Timed(r, start, with_hole) for n, r in runtimes.items()}  # kept: one each
    start[0] = time.perf_counter()
    states = observe(timed, observer=Observer())  # the default timeout: 10 s
    waited = time.perf_counter() - start[0]
    good = [n for n in with_hole if n != "hole"]
    found: dict[str, Any] = {
        "slowest_good_host_s": round(max(with_hole[n] for n in good), 4),
        "slowest_good_host_without_hole_s": round(max(without.values()), 4),
        "hole_reachable": states["hole"].reachable,
        "hole_error": states["hole"].error,
        "pass_waited_s": round(waited, 2),
    }
    # the service's passes, one Observer across them, as --observe-timeout 1 has it
    runtimes = connect(many_hosts, "scale")
    observe(runtimes)  # connections opened
    runtimes.update(connect([hole], "scale"))
    observer = Observer(1.0)
    passes = [time.perf_counter()]
    observe(runtimes, observer=observer)  # the first pass: the deadline
    passes.append(time.perf_counter())
    observe(runtimes, observer=observer)  # the hole's observation still in flight
    passes.append(time.perf_counter())
    while observer.in_flight():  # its answer (the connect timeout) comes
        time.sleep(0.05)
    passes.append(time.perf_counter())
    observe(runtimes, observer=observer)  # that answer used
    passes.append(time.perf_counter())
    states = observe(runtimes, observer=observer)  # asked again: LATE_GRACE
    passes.append(time.perf_counter())
    seconds = [round(b - a, 3) for a, b in itertools.pairwise(passes)]
    found["timeout_1_first_pass_s"] = seconds[0]
    found["timeout_1_later_passes_s"] = [seconds[1], seconds[3], seconds[4]]
    found["hole_error_later"] = states["hole"].error
    return found


def one_change(sizes: Sequence[int] = (10, 10_000), repeat: int = 3) -> dict[str, Any]:
    """Converge time of one bare Pod's new image among ``size`` in-sync pods."""
    from reconciler.apply.converge import connect, converge, make_plan, observe

    result: dict[str, Any] = {}
    for size in sizes:
        base = manifests_text(size - 1, templates=min(100, size - 1)) if size > 1 else ""
        pod = (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: target}\n"
            "spec: {containers: [{name: main, image: 'sample/app:%d'}]}\n"
        )
        before = validated_manifests(base + "---\n" + pod % 0)
        times = []
        with engines(3, before) as hosts:
            runtimes = connect(hosts, "scale")
            settings = _settings()
            for attempt in range(repeat):
                changed = validated_manifests(base + "---\n" + pod % (attempt + 1))
                live = observe(runtimes)
                _, the_plan = make_plan(changed, hosts, live, settings)
                assert len(the_plan.actions) == 1, the_plan.actions[:3]
                started = time.perf_counter()
                done = converge(the_plan, changed, hosts, settings, runtimes)
                times.append(time.perf_counter() - started)
                assert all(r.ok for r in done.report.results), done.report.results
        result[str(size)] = round(statistics.median(times), 4)
    small, large = (str(s) for s in sizes)
    result["ratio"] = round(result[large] / result[small], 2)
    return result


def service_memory_child(pods: int, passes: int, urls: Sequence[str]) -> dict[str, Any]:
    """Run in a fresh process: the service's own passes (``ReconcileService.run_pass``:
    fetch, validate, observe, plan, converge, status board, metrics) against the engines;
    RSS after a tenth of them and at the end, and the peak."""
    from reconciler.core.collector import tune_for_large_states
    from reconciler.daemon.config import RunConfig
    from reconciler.daemon.loop import ReconcileService
    from reconciler.source.hosts import Host

    tune_for_large_states()  # as ``ReconcileService.run`` does before its first pass
    hosts = [Host(f"h{i}", url, f"10.231.0.{11 + i}") for i, url in enumerate(urls)]
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="scale-service-") as source:
        Path(source, "scale.yaml").write_text(manifests_text(pods), encoding="utf-8")
        config = RunConfig(
            source=source,
            listen="127.0.0.1:0",
            hosts=hosts,
            instance="scale",
            settings=_settings(),
            resync=3600,
            max_pods=pods,  # the operator allows this many (--max-pods)
        )
        service = ReconcileService(config)
        for index in range(passes):
            outcome = service.run_pass("bench")
            assert outcome.ok and outcome.applied == 0, (outcome, service.board.snapshot())
            if index + 1 == max(1, passes // 10):
                marks["rss_after_tenth_mb"] = _rss_mb()
    marks["rss_end_mb"] = _rss_mb()
    marks["peak_mb"] = round(peak_rss_mb(), 1)
    return {"pods": pods, "passes": passes, **marks}


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


def service_memory(pods: int, passes: int) -> dict[str, Any]:
    manifests = validated_manifests(manifests_text(pods))
    with engines(3, manifests) as hosts:
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale_hosts", "--memory-child", str(pods)]
            + ["--passes", str(passes), "--urls", ",".join(h.url for h in hosts)],
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise SystemExit(f"memory child failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


#: What ``reconciler diff`` imports before it reads its first file (the entry point, the
#: group, the verb's module): timed apart, it is the start-up share of a diff.
_DIFF_IMPORTS = "import reconciler.cli, reconciler.cli.diff_apply"


def cli_floor(containers: int = 1_100, repeat: int = 5) -> dict[str, Any]:
    """A no-op ``reconciler diff`` against its floor, on 1 engine and on 3."""
    import docker

    from reconciler.core import labels as L

    pods = containers // 2  # infra + one app container each
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="scale-cli-") as tmp:
        source = Path(tmp) / "manifests.yaml"
        source.write_text(manifests_text(pods, templates=50), encoding="utf-8")
        manifests = validated_manifests(source.read_text(encoding="utf-8"))
        started = []
        for count in (1, 3):
            with engines(count, manifests, instance="scale-cli") as hosts:
                hosts_file = Path(tmp) / f"hosts{count}.yaml"
                hosts_file.write_text(
                    "hosts:\n"
                    + "".join(
                        f"  - {{name: {h.name}, url: '{h.url}', address: {h.address}}}\n"
                        for h in hosts
                    ),
                    encoding="utf-8",
                )
                command = str(Path(sys.executable).with_name("reconciler"))  # as a user runs it
                argv = [command, "diff", "--source", str(source)]
                argv += ["--hosts", str(hosts_file), "--instance", "scale-cli"]
                env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
                cli = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
                    cli.append(time.perf_counter() - began)
                    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
                interpreter = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    subprocess.run([sys.executable, "-c", "pass"], check=True)
                    interpreter.append(time.perf_counter() - began)
                # not part of the floor: what of the diff is its start-up (the modules a
                # diff imports before it reads anything), to say where the rest goes
                startup = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    subprocess.run([sys.executable, "-c", _DIFF_IMPORTS], check=True)
                    startup.append(time.perf_counter() - began)
                clients = [docker.APIClient(base_url=h.url, version="1.41") for h in hosts]
                filters = {"label": L.ownership_filters("scale-cli")}

                def list_one(client: Any, filters: Any = filters) -> Any:
                    return client.containers(all=True, filters=filters)

                lists = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    with _pool(len(clients)) as pool:
                        listed = list(pool.map(list_one, clients))
                    lists.append(time.perf_counter() - began)
                    assert sum(len(x) for x in listed) >= containers, [len(x) for x in listed]
                floor = statistics.median(interpreter) + statistics.median(lists)
                result[f"{count}_hosts"] = {
                    "cli_s": round(statistics.median(cli), 3),
                    "interpreter_s": round(statistics.median(interpreter), 3),
                    "startup_s": round(statistics.median(startup), 3),
                    "list_calls_s": round(statistics.median(lists), 3),
                    "floor_s": round(floor, 3),
                    "ratio": round(statistics.median(cli) / floor, 2),
                }
                started.append(count)
    return result


def _pool(workers: int) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers)


def measure(passes: int = 1000, repeat: int = 3) -> dict[str, Any]:
    return {
        "fan_out": fan_out(repeat=repeat + 2),
        "one_change": one_change(repeat=repeat),
        "memory_10k": service_memory(10_000, 3),
        "leak_1k": service_memory(1_000, passes),
        "cli": cli_floor(repeat=repeat + 2),
    }


def report(found: dict[str, Any]) -> list[dict[str, Any]]:
    fan = found["fan_out"]
    print(
        f"== fan-out: pass over 1 engine {fan['pass_one_s'] * 1000:.1f} ms, over "
        f"{fan['hosts']} engines ({fan['pods_per_host']} pods each) "
        f"{fan['pass_many_s'] * 1000:.1f} ms: {fan['ratio']:.2f}x"
    )
    hole = fan.get("black_hole")
    if isinstance(hole, dict):
        print(
            f"   with a black-holed host: slowest good host answered after "
            f"{hole['slowest_good_host_s'] * 1000:.1f} ms (without it "
            f"{hole['slowest_good_host_without_hole_s'] * 1000:.1f} ms); the first pass "
            f"waited {hole['pass_waited_s']:.1f} s for the hole (the connect timeout, under "
            f"the 10 s observation timeout); with --observe-timeout 1 the first pass took "
            f"{hole['timeout_1_first_pass_s']:.2f} s and the next ones (its observation in "
            f"flight, its answer used, asked again) "
            + ", ".join(f"{s * 1000:.0f}" for s in hole["timeout_1_later_passes_s"])
            + " ms"
        )
    else:
        print(f"   black-holed host: {hole}")
    change = found["one_change"]
    print(
        f"== one change applied (converge): among 10 pods {change['10'] * 1000:.1f} ms, "
        f"among 10,000 {change['10000'] * 1000:.1f} ms: {change['ratio']:.2f}x"
    )
    mem, leak = found["memory_10k"], found["leak_1k"]
    print(f"== service passes: peak RSS at 10k pods {mem['peak_mb']:.1f} MB")
    print(
        f"   {leak['passes']} passes at 1k pods: RSS {leak['rss_after_tenth_mb']:.1f} MB after "
        f"a tenth, {leak['rss_end_mb']:.1f} MB at the end"
    )
    for name, row in found["cli"].items():
        print(
            f"== no-op reconciler diff, 1,100 containers on {name.replace('_', ' ')}: "
            f"{row['cli_s']:.3f} s; floor {row['floor_s']:.3f} s (interpreter "
            f"{row['interpreter_s']:.3f} + list calls {row['list_calls_s']:.3f}): "
            f"{row['ratio']:.2f}x; of the diff, start-up (interpreter and imports) "
            f"{row['startup_s']:.3f} s"
        )
    growth = leak["rss_end_mb"] - leak["rss_after_tenth_mb"]
    targets = [
        ("20-host pass <= 1.5x one host", fan["ratio"], fan["ratio"] <= 1.5),
        ("one change among 10k <= 1.5x among 10", change["ratio"], change["ratio"] <= 1.5),
        ("service memory at 10k <= 150 MB", mem["peak_mb"], mem["peak_mb"] <= 150),
        ("flat over the passes (growth <= 5 MB)", round(growth, 1), growth <= 5),
    ]
    if isinstance(hole, dict):
        late = hole["slowest_good_host_s"] - hole["slowest_good_host_without_hole_s"]
        targets.append(("black hole delays no other host (<= 0.1 s)", round(late, 3), late <= 0.1))
        later = max(hole["timeout_1_later_passes_s"])
        targets.append(("black hole costs later passes <= 0.5 s", later, later <= 0.5))
    targets += [
        (f"no-op diff on {name.replace('_', ' ')} <= 1.5x floor", row["ratio"], row["ratio"] <= 1.5)
        for name, row in found["cli"].items()
    ]
    if not isinstance(hole, dict):  # the kernel answered: not measured, never a pass
        print(f"target black hole delays no other host: {verdicts.NOT_MEASURED}")
    rows = []
    for name, value, ok in targets:
        print(f"target {name}: {verdicts.status(ok)} ({value})")
        rows.append({"target": name, "value": value, "result": verdicts.status(ok)})
    if not isinstance(hole, dict):
        rows.append({"target": "black hole delays no other host", "result": verdicts.NOT_MEASURED})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="bench.scale_hosts", description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--urls", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        found = service_memory_child(args.memory_child, args.passes, args.urls.split(","))
        print(json.dumps(found))
        return 0
    found = measure(args.passes, args.repeat)
    targets = report(found)
    if args.json:
        print(json.dumps({"found": found, "targets": targets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
