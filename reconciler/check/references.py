"""Checks across objects for what pods use: every Secret, ConfigMap, key and claim a pod
refers to must be defined in its namespace, unless the reference is ``optional`` (claims
and imagePullSecrets never are). An error points at the reference, file and line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.core.model import Diagnostic, Severity

CONFIG_KINDS = frozenset({"Secret", "ConfigMap", "PersistentVolumeClaim"})
DOCKER_CONFIG_TYPE = "kubernetes.io/dockerconfigjson"


def check_references(facts: Iterable[Any], out: list[Diagnostic]) -> None:
    """``facts``: the ``tree.TreeFacts`` of every object, duplicates left out."""
    facts = list(facts)
    defined = {(f.kind, f.namespace, f.name): f for f in facts if f.kind in CONFIG_KINDS}
    for fact in facts:
        for ref in fact.refs:
            target = defined.get((ref.kind, fact.namespace, ref.name))
            if target is None:
                if not ref.optional:
                    fact.report(
                        out,
                        Severity.ERROR,
                        ref.path,
                        f"{ref.kind} {ref.name!r} is not defined in namespace {fact.namespace}"
                        + ("" if ref.kind == "PersistentVolumeClaim" else " (or mark it optional)"),
                    )
                continue
            if ref.key and ref.key not in target.keys and not ref.optional:
                fact.report(
                    out,
                    Severity.ERROR,
                    ref.path,
                    f"{ref.kind} {ref.name!r} has no key {ref.key!r}"
                    + (f" (keys: {', '.join(sorted(target.keys))})" if target.keys else "")
                    + " (or mark it optional)",
                )
            if ref.image_pull and target.secret_type != DOCKER_CONFIG_TYPE:
                fact.report(
                    out,
                    Severity.ERROR,
                    ref.path,
                    f"imagePullSecrets needs a Secret of type {DOCKER_CONFIG_TYPE}; "
                    f"{ref.name!r} is {target.secret_type or 'Opaque'}",
                )
