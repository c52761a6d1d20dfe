"""Rollout benchmark: how long a Deployment's rollout of N replicas takes, against the floor
of creating N pods at all.

Run from the repository root (needs a Docker engine)::

    .venv/bin/python -m bench.rollout                  # 10 replicas, 3 rounds
    .venv/bin/python -m bench.rollout --replicas 20 --rounds 1 --json

Each round, in one run, on one engine, with this run's own images and instance labels:

1. the **floor**: the N pods' 2N containers (infra + app, the very same names, labels and
   host options as the reconciler makes) created and started with the Docker SDK in a pool
   of 8 threads, nothing computed while timed (``bench.converge.floor_create``);
2. a Deployment of N replicas applied and rolled out (not timed), then its template changed
   and the **rollout** timed in this process: every pass (observe, step, plan, write the
   rollout memory, execute) until it reports complete, as ``reconciler apply`` drives it,
   with Kubernetes' default strategy (maxSurge 25%, maxUnavailable 25%, so the new pods
   come in waves gated on the previous wave's readiness) and with ``maxSurge: 100%`` (every
   new pod at once: what is left is the cost of the passes themselves).

A rollout makes N pods and removes N, in waves each gated on readiness, so it cannot be
as fast as the floor; the ratio says what the gating and the passes cost. Target: the
default strategy within ``ROLLOUT_TARGET`` times the floor. Everything made carries this
run's instance label and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import verdicts
from bench.converge import SLEEP_COMMAND, Bench, floor_create, rc_manifest, verdict
from reconciler.apply.converge import connect, load_source, make_plan, observe_and_remember
from reconciler.apply.drive import Driven, Pacing, drive
from reconciler.desire.settings import Settings
from reconciler.source.hosts import DEFAULT_SOCKET

ROLLOUT_TARGET = 4.0  # default-strategy rollout / create floor, at most


def deployment_manifest(
    replicas: int, image: str, version: str, surge: str = "25%", unavailable: str = "25%"
) -> str:
    """A Deployment of ``replicas`` one-container pods; ``version`` (an env var) is what a
    rollout changes."""
    args = json.dumps(list(SLEEP_COMMAND))
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata: {name: web}\n"
        "spec:\n"
        f"  replicas: {replicas}\n"
        f"  strategy: {{rollingUpdate: {{maxSurge: {surge!r}, maxUnavailable: {unavailable!r}}}}}\n"
        "  selector: {matchLabels: {app: web}}\n"
        "  template:\n"
        "    metadata: {labels: {app: web}}\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: c0\n"
        f"          image: {json.dumps(image)}\n"
        "          imagePullPolicy: IfNotPresent\n"
        f"          args: {args}\n"
        f"          env: [{{name: VERSION, value: {json.dumps(version)}}}]\n"
    )


def apply_inprocess(bench: Bench, manifest: str, instance: str, concurrency: int) -> Driven:
    """``reconciler apply`` in this process: passes until the rollout is done."""
    validation, _ = load_source([manifest])
    settings = Settings(instance=instance, infra_image=bench.infra_image)
    runtimes = connect([bench.host], instance, grace_seconds=0)
    try:
        live, memory, now = observe_and_remember(runtimes, instance, None)
        _, first = make_plan(validation.manifests, [bench.host], live, settings, now=now)
        return drive(
            first,
            validation.manifests,
            [bench.host],
            settings,
            runtimes,
            concurrency=concurrency,
            host_memory=memory,
            now=now,
            pacing=Pacing(interval=0.1),
        )
    finally:
        for runtime in runtimes.values():
            runtime.close()


def timed_rollout(
    bench: Bench, replicas: int, instance: str, concurrency: int, surge: str, unavailable: str
) -> dict[str, Any]:
    first = bench.write(
        f"{instance}-v1.yaml",
        deployment_manifest(replicas, bench.app_image, "1", surge, unavailable),
    )
    made = apply_inprocess(bench, first, instance, concurrency)
    if made.failed_rollouts or made.still_failing:
        raise RuntimeError(f"the first apply failed: {made.still_failing[:3]}")
    second = bench.write(
        f"{instance}-v2.yaml",
        deployment_manifest(replicas, bench.app_image, "2", surge, unavailable),
    )
    started = time.perf_counter()
    rolled = apply_inprocess(bench, second, instance, concurrency)
    seconds = time.perf_counter() - started
    status = rolled.rollouts.steps
    if (
        rolled.failed_rollouts
        or not status
        or any(s.status.state != "complete" for s in status.values())
    ):
        raise RuntimeError(
            f"the rollout did not complete: {[s.status.message for s in status.values()]}"
        )
    return {"seconds": seconds, "passes": rolled.passes, "actions": len(rolled.report.results)}


def run(replicas: int, rounds: int, concurrency: int, verbose: bool) -> dict[str, Any]:
    bench = Bench(docker_host=DEFAULT_SOCKET, verbose=verbose)
    try:
        bench.make_images()
        floor_manifest = bench.write("floor.yaml", rc_manifest("web", replicas, bench.app_image))
        floors: list[float] = []
        default: list[dict[str, Any]] = []
        at_once: list[dict[str, Any]] = []
        for round_ in range(rounds):
            instance = bench.instance(f"f{round_}")
            bench.log(f"round {round_ + 1}: floor")
            floors.append(floor_create(bench, floor_manifest, instance, concurrency))
            bench.remove_instance(instance)
            bench.log(f"round {round_ + 1}: rollout, maxSurge 25%")
            instance = bench.instance(f"d{round_}")
            default.append(timed_rollout(bench, replicas, instance, concurrency, "25%", "25%"))
            bench.remove_instance(instance)
            bench.log(f"round {round_ + 1}: rollout, maxSurge 100%")
            instance = bench.instance(f"a{round_}")
            at_once.append(timed_rollout(bench, replicas, instance, concurrency, "100%", "0%"))
            bench.remove_instance(instance)
        floor = statistics.median(floors)
        rolled = statistics.median(r["seconds"] for r in default)
        fast = statistics.median(r["seconds"] for r in at_once)
        return {
            "replicas": replicas,
            "rounds": rounds,
            "concurrency": concurrency,
            "floor_create_s": round(floor, 3),
            "rollout_default_s": round(rolled, 3),
            "rollout_default_passes": default[-1]["passes"],
            "rollout_surge_all_s": round(fast, 3),
            "rollout_surge_all_passes": at_once[-1]["passes"],
            "ratio_default": round(rolled / floor, 2),
            "ratio_surge_all": round(fast / floor, 2),
            "target_max_ratio": ROLLOUT_TARGET,
            "pass": rolled / floor <= ROLLOUT_TARGET,
        }
    finally:
        bench.cleanup()


def report(result: dict[str, Any]) -> str:
    n = result["replicas"]
    return "\n".join(
        [
            f"rollout of a {n}-replica Deployment (median of {result['rounds']} round(s), "
            f"concurrency {result['concurrency']})",
            f"  floor: create {n} pods with the SDK      {result['floor_create_s']:8.2f} s",
            f"  rollout, maxSurge 25% / maxUnavailable 25%: {result['rollout_default_s']:6.2f} s"
            f"  ({result['rollout_default_passes']} passes)  {result['ratio_default']:.2f}x floor",
            f"  rollout, maxSurge 100% / maxUnavailable 0%: {result['rollout_surge_all_s']:6.2f} s"
            f"  ({result['rollout_surge_all_passes']} passes)  "
            f"{result['ratio_surge_all']:.2f}x floor",
            f"target: default rollout <= {result['target_max_ratio']}x the create floor: "
            f"{verdict(result['pass'])}",
            verdicts.overall_line([verdict(result["pass"])]),
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rollout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="Also print one JSON line.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Progress on stderr.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args.replicas, args.rounds, args.concurrency, args.verbose)
    except Exception as exc:  # no figure: say why
        print(f"bench.rollout: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
