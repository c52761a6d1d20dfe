"""Smoke test of bench/validate.py: its generator still makes a valid tree of the right size.

No timing here: the benchmark itself (``python -m bench.validate``) measures; this only proves
that it would run on valid input. See bench/README.md.
"""

from collections import Counter
from pathlib import Path

import kubernetes_validate
import yaml

from bench.validate import (
    HOST_PATH_PREFIX,
    NODE_PORT_RANGE,
    PATTERN,
    generate_tree,
    parse_args,
    peer_sample,
    service_ports,
)
from reconciler.check.policy import Policy
from reconciler.check.validate import validate
from reconciler.source.load import load_paths

#: The policy the benchmark passes (``POLICY_FLAGS``): its hostPath volumes are allowed.
BENCH_POLICY = Policy.from_flags("baseline", [HOST_PATH_PREFIX])


def test_generated_tree_is_valid_with_the_expected_objects(tmp_path: Path) -> None:
    tree = generate_tree(tmp_path / "manifests", files=20, docs_per_file=10, seed=1)

    assert len(tree.files) == 20
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml")) == sorted(
        p.relative_to(tmp_path).as_posix() for p in tree.files
    )
    assert tree.objects == 200
    assert tree.kinds == Counter({"Service": 80, "ReplicationController": 60, "Pod": 60})
    assert tree.node_port_services == 20
    assert tree.bytes == sum(p.stat().st_size for p in tree.files)

    result = validate(load_paths([str(tree.root)]), BENCH_POLICY)
    assert result.diagnostics == []  # valid, and not even a warning
    assert len(result.manifests) == 200
    assert Counter(m.kind for m in result.manifests) == tree.kinds


def test_generated_objects_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    # One file holds every shape the generator makes (the PATTERN's ten slots, a NodePort and
    # ClusterIP Services); the peer is slow, so it checks that file only.
    tree = generate_tree(tmp_path, files=1, docs_per_file=len(PATTERN), seed=2)
    objects = [doc for doc in yaml.safe_load_all(tree.files[0].read_text(encoding="utf-8")) if doc]
    assert len(objects) == len(PATTERN)
    assert {o["spec"].get("type") for o in objects if o["kind"] == "Service"} == {
        "NodePort",
        "ClusterIP",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, kubernetes_validate.utils.latest_version(), strict=True)


def test_node_ports_are_unique_and_never_run_out(tmp_path: Path) -> None:
    # More NodePort candidates than the range holds: the rest become ClusterIP. A range of
    # 9 ports stands in for the real 2,768 (bench/validate.py's default) to keep this fast.
    low, high = 30000, 30008
    tree = generate_tree(tmp_path, files=10, docs_per_file=2, seed=3, node_port_range=(low, high))
    used: list[int] = []
    for path in tree.files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc["kind"] == "Service" and doc["spec"]["type"] == "NodePort":
                used.extend(p["nodePort"] for p in doc["spec"]["ports"])
    per_service = service_ports({"kind": "ReplicationController"})  # slot 1 follows an RC
    assert tree.node_port_services == (high - low + 1) // per_service
    assert sorted(used) == list(range(low, low + tree.node_port_services * per_service))
    assert validate(load_paths([str(tree.root)]), BENCH_POLICY).diagnostics == []
    assert NODE_PORT_RANGE == (30000, 32767)


def test_peer_sample_spreads_over_the_tree(tmp_path: Path) -> None:
    tree = generate_tree(tmp_path, files=100, docs_per_file=1)
    sample = peer_sample(tree, 10)
    assert len(sample) == 10
    assert len({p.parent for p in sample}) == 2  # both namespaces (50 files each)
    assert peer_sample(tree, 500) == tree.files


def test_defaults_are_the_spec_size() -> None:
    args = parse_args([])
    assert args.files * args.docs_per_file == 10_000
    assert args.runs == 3
