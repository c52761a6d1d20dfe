"""The service does not grow over its passes: 200 steady passes of the real
``ReconcileService`` (in-memory hosts, 30 pods) keep the memory they had after the first 20.
Measured with tracemalloc (what Python allocated and still holds), not timed."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from pathlib import Path

from reconciler.daemon.config import RunConfig
from reconciler.daemon.loop import ReconcileService
from reconciler.desire.settings import Settings
from reconciler.source.hosts import Host

from .memory_runtime import MemoryHost

RC = """apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 30
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: app, image: "web:1", ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def _held() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_two_hundred_steady_passes_hold_no_more_than_twenty(tmp_path: Path) -> None:
    source = tmp_path / "manifests"
    source.mkdir()
    (source / "web.yaml").write_text(RC)
    hosts = [Host(f"h{i}", f"tcp://10.231.0.{11 + i}:2375", f"10.231.0.{11 + i}") for i in (1, 2)]
    runtimes = {
        h.name: MemoryHost(h.name, instance="leak", images=("web:1",), address=h.address)
        for h in hosts
    }
    config = RunConfig(
        source=str(source),
        listen="127.0.0.1:0",
        hosts=hosts,
        instance="leak",
        settings=Settings(instance="leak", forwarder_image="reconciler/forwarder:leak"),
        resync=3600,
    )
    service = ReconcileService(config, runtimes=runtimes)
    assert service.run_pass("first").ok
    # the test harness keeps every log record it captures: that is not the service's memory
    logging.disable(logging.CRITICAL)
    tracemalloc.start()
    try:
        for _ in range(20):
            outcome = service.run_pass("steady")
            assert outcome.ok and outcome.applied == 0
        settled = _held()
        for _ in range(180):
            service.run_pass("steady")
        grown = _held() - settled
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    # measured: ~11 KB (counters, metrics' buckets); keeping one small value per pass (a
    # PassOutcome) is ~34 KB, anything per pod far more
    assert grown < 24 * 1024, f"{grown} bytes more after 180 more passes"
