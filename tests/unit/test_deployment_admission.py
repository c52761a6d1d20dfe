"""A Deployment's pods are pods: the operator's policy checks its template, and its replicas
count against ``--max-pods``, as for a ReplicationController. Plain values, no mocks."""

from __future__ import annotations

from reconciler.check.policy import Level, Policy
from reconciler.check.validate import validate
from reconciler.desire.budget import pod_budget
from reconciler.source.load import parse_text

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
    assert validate(loaded, Policy.from_flags(Level.PRIVILEGED.value, ())).valid


def test_a_deployments_replicas_count_against_max_pods() -> None:
    loaded = parse_text(DEPLOYMENT.replace("REPLICAS", "40"), "web.yaml")
    [over] = pod_budget(loaded.manifests, 30)
    assert over.path == "spec.replicas" and "40 pods in all" in over.message
    assert pod_budget(loaded.manifests, 40) == []
