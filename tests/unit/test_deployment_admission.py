"""A Deployment's pods are pods: the operator's policy checks its template, and its replicas
count against ``--max-pods``, as for a ReplicationController. Plain values, no mocks."""

from __future__ import annotations

from reconciler.apply.converge import make_plan
from reconciler.check.policy import Level, Policy
from reconciler.check.validate import validate
from reconciler.desire.budget import pod_budget
from reconciler.desire.settings import Settings
from reconciler.plan.guards import Limits, refused
from reconciler.source.hosts import Host
from reconciler.source.load import parse_text

from .memory_runtime import MemoryHost

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      containers: [{name: app, image: "web:1"}]
"""


def test_the_policy_checks_a_deployments_template() -> None:
    loaded = parse_text(DEPLOYMENT.replace("REPLICAS", "2"), "web.yaml")
    refused = validate(loaded)  # baseline by default
    [error] = refused.errors
    assert error.path == "spec.template.spec.hostNetwork" and "policy baseline" in error.message
    assert (error.location.file, error.location.line) == ("web.yaml", 11)
    assert validate(loaded, Policy.from_flags(Level.PRIVILEGED.value, ())).valid


def test_the_policy_checks_a_deployments_init_containers() -> None:
    """Init containers (issue 11's health part) are pods' containers: same policy."""
    text = DEPLOYMENT.replace("REPLICAS", "2").replace(
        "      hostNetwork: true\n",
        "      initContainers:\n"
        "        - {name: setup, image: busybox, securityContext: {privileged: true}}\n",
    )
    [error] = validate(parse_text(text, "web.yaml")).errors
    assert error.path == "spec.template.spec.initContainers[0].securityContext.privileged"
    assert error.location.line == 12 and "policy baseline" in error.message


def test_a_deployments_pods_count_against_max_create() -> None:
    """The mass-create guard counts the pods a Deployment would make, as an RC's."""
    text = DEPLOYMENT.replace("REPLICAS", "150").replace("      hostNetwork: true\n", "")
    result = validate(parse_text(text, "web.yaml"))
    assert result.valid, [str(d) for d in result.errors]
    hosts = [Host("h1", "tcp://10.231.0.11:2375", "10.231.0.11")]
    live = {h.name: MemoryHost(h.name).observe() for h in hosts}
    _, the_plan = make_plan(result.manifests, hosts, live, Settings())
    assert refused(the_plan, Limits()) == [
        "this plan would create 150 pods on host h1, more than --max-create 100 (pass "
        "--allow-mass-create if you mean it)"
    ]
    assert refused(the_plan, Limits(allow_mass_create=True)) == []


def test_a_deployments_replicas_count_against_max_pods() -> None:
    loaded = parse_text(DEPLOYMENT.replace("REPLICAS", "40"), "web.yaml")
    [over] = pod_budget(loaded.manifests, 30)
    assert over.path == "spec.replicas" and "40 pods in all" in over.message
    assert (over.location.file, over.location.line) == ("web.yaml", 6)
    assert pod_budget(loaded.manifests, 40) == []
