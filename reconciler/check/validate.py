"""Validate loaded manifests: JSON Schemas from ``schemas/``, then what the API server checks.

Three passes, all reporting every problem (never stopping at the first):

1. shape: apiVersion and kind are ones we read (old v1beta shapes get a migration hint);
2. schema: the kind's JSON Schema. Unknown fields are errors (typos such as ``contianers``);
   fields Kubernetes knows but the reconciler does not act on carry ``x-unhonoured`` in the
   schema and become warnings naming the field;
3. semantics: names, label syntax, duplicates, port ranges, selectors — per object
   (``objects``, ``pods``), then across the whole tree (``tree``: duplicate objects,
   nodePorts, what Services select).

This module runs them in that order; ``parallel`` runs the same steps in worker processes.
Pure: values in, diagnostics out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.check.objects import CHECKS, check_shape
from reconciler.check.policy import Policy, check_policy
from reconciler.check.report import Reporter, schema_diagnostics
from reconciler.check.schemas import schema_checks
from reconciler.check.tree import finish, tree_facts
from reconciler.core.model import Diagnostic, Manifest
from reconciler.source.load import LoadResult


@dataclass
class ValidationResult:
    """All objects found, and every error and warning about them, sorted by position."""

    manifests: list[Manifest] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    @property
    def valid(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


#: What a manifest may ask of the hosts when the operator said nothing: ``baseline``.
DEFAULT_POLICY = Policy()


def check_manifest(
    manifest: Manifest, out: list[Diagnostic], policy: Policy = DEFAULT_POLICY
) -> None:
    """All single-object checks of one manifest, appended to ``out``: its shape, its schema,
    what the API server checks, and the operator's ``policy``."""
    report = Reporter(manifest, out)
    if not check_shape(report, manifest):
        return
    for error in schema_checks()[manifest.kind](manifest.body):
        schema_diagnostics(report, error)
    CHECKS[manifest.kind](report, manifest.body)
    check_policy(report, manifest.kind, manifest.body, policy)


def validate(loaded: LoadResult, policy: Policy = DEFAULT_POLICY) -> ValidationResult:
    """Validate everything loaded against the operator's ``policy`` (baseline unless told
    otherwise); diagnostics come back sorted by file and position."""
    diagnostics = list(loaded.diagnostics)
    for manifest in loaded.manifests:
        check_manifest(manifest, diagnostics, policy)
    facts = [tree_facts(manifest) for manifest in loaded.manifests]
    return ValidationResult(list(loaded.manifests), finish(diagnostics, facts))
