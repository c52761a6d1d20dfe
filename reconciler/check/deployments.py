"""What the API server checks of a Deployment (``apps/v1``) beyond its schema: the label
selector and that it selects the template's own pods, the rollout strategy (``maxSurge`` and
``maxUnavailable`` as numbers or percentages, never both 0), the deadline against
``minReadySeconds``, the pod template (``restartPolicy: Always``), and room in the name for
the pods' ``-<template hash>-<ordinal>`` suffix.

The rules and their wording follow ``pkg/apis/apps/validation`` (``ValidateDeploymentSpec``,
``ValidateRollingUpdateDeployment``, ``ValidateLabelSelector``), with the field's position.
``check.objects`` calls :func:`check_deployment_spec` after the metadata checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from reconciler.check.pods import check_pod_spec
from reconciler.check.report import Reporter
from reconciler.core import names
from reconciler.core.model import FieldPath, as_list, as_map

#: Kubernetes' defaults (``pkg/apis/apps/v1/defaults.go``)
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_HISTORY_LIMIT = 10
#: a pod's name is ``<deployment>-<10 characters of template hash>-<ordinal>``
TEMPLATE_HASH_LENGTH = 10
_PERCENT = re.compile(r"^[0-9]+%$")
#: matchExpressions operators, and how ``core.selectors`` spells each
SELECTOR_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
#: the selector operators that need values, and those that take none
_WITH_VALUES = ("In", "NotIn")


def int_or_percent(value: Any) -> int | None:
    """The number in ``3`` or ``"25%"`` (25); None for a value the schema reported."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    return None


def _check_selector(report: Reporter, spec: Mapping[str, Any], labels: Mapping[str, Any]) -> None:
    if "selector" not in spec:
        return  # the schema reported the missing field
    selector = as_map(spec.get("selector"))
    path: FieldPath = ("spec", "selector")
    match_labels = as_map(selector.get("matchLabels"))
    expressions = as_list(selector.get("matchExpressions"))
    if not match_labels and not expressions:
        report.error(path, "empty selector is invalid for a Deployment: it would select every pod")
        return
    mismatches: list[str] = []
    for key, value in match_labels.items():
        problem = names.qualified_name(key)
        if problem:
            report.error(path + ("matchLabels", key), f"key {key!r}: {problem}")
        if isinstance(value, str):
            problem = names.label_value(value)
            if problem:
                report.error(path + ("matchLabels", key), f"value {value!r} {problem}")
            if labels.get(key) != value:
                mismatches.append(
                    f"{key}={value} (the template has {key}={labels[key]})"
                    if key in labels
                    else f"{key}={value} (the template has no label {key!r})"
                )
    for index, expression in enumerate(expressions):
        expression = as_map(expression)
        epath = path + ("matchExpressions", index)
        expr_key, operator = expression.get("key"), expression.get("operator")
        if not isinstance(operator, str):
            operator = None  # the schema reported it
        values = [v for v in as_list(expression.get("values")) if isinstance(v, str)]
        if isinstance(expr_key, str):
            key_problem = names.qualified_name(expr_key)
            if key_problem:
                report.error(epath + ("key",), f"key {expr_key!r}: {key_problem}")
        if operator in _WITH_VALUES and not values:
            report.error(epath + ("values",), f"must be specified when `operator` is {operator!r}")
        elif operator in SELECTOR_OPERATORS and operator not in _WITH_VALUES and values:
            report.error(
                epath + ("values",), f"may not be specified when `operator` is {operator!r}"
            )
        for vindex, value in enumerate(values):
            problem = names.label_value(value)
            if problem:
                report.error(epath + ("values", vindex), f"value {value!r} {problem}")
        if (
            isinstance(expr_key, str)
            and operator in SELECTOR_OPERATORS
            and not _expression_matches(expr_key, str(operator), values, labels)
        ):
            listed = f" ({','.join(values)})" if values else ""
            mismatches.append(f"{expr_key} {operator}{listed}")
    if mismatches:
        report.error(
            ("spec", "template", "metadata", "labels"),
            "`selector` does not match template `labels`: "
            + "; ".join(mismatches)
            + ": the Deployment would never see its own pods",
        )


def _expression_matches(
    key: str, operator: str, values: list[str], labels: Mapping[str, Any]
) -> bool:
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    return not present


def _check_strategy(report: Reporter, spec: Mapping[str, Any]) -> None:
    strategy = as_map(spec.get("strategy"))
    path: FieldPath = ("spec", "strategy")
    kind = strategy.get("type", "RollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            report.error(
                path + ("rollingUpdate",),
                "may not be specified when strategy `type` is 'Recreate'",
            )
        return
    rolling = as_map(rolling)
    surge = int_or_percent(rolling.get("maxSurge", DEFAULT_MAX_SURGE))
    unavailable = int_or_percent(rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE))
    if surge == 0 and unavailable == 0:
        report.error(
            path + ("rollingUpdate", "maxUnavailable"),
            "may not be 0 when `maxSurge` is 0: the rollout could never replace a pod",
        )
    written = rolling.get("maxUnavailable")
    if isinstance(written, str) and unavailable is not None and unavailable > 100:
        report.error(
            path + ("rollingUpdate", "maxUnavailable"),
            f"must not be greater than 100%; got {written!r}",
        )


def _check_times(report: Reporter, spec: Mapping[str, Any]) -> None:
    min_ready = spec.get("minReadySeconds", 0)
    deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE)
    if (
        isinstance(min_ready, int)
        and isinstance(deadline, int)
        and not isinstance(min_ready, bool)
        and not isinstance(deadline, bool)
        and deadline <= min_ready
    ):
        default = "" if "progressDeadlineSeconds" in spec else ", the default"
        report.error(
            ("spec", "progressDeadlineSeconds"),
            f"progressDeadlineSeconds ({deadline}{default}) must be greater than "
            f"minReadySeconds ({min_ready})",
        )


def _check_name_room(report: Reporter, name: Any, replicas: Any) -> None:
    """Pods are named ``<name>-<hash>-<ordinal>``: that must stay a valid pod name."""
    if not isinstance(name, str) or names.dns1123_subdomain(name):
        return
    count = replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 1
    suffix = 2 + TEMPLATE_HASH_LENGTH + len(str(max(count - 1, 0)))
    if len(name) + suffix > 253:
        report.error(
            ("metadata", "name"),
            f"too long for a Deployment: its pods are named {name[:20]}...-<hash>-<n>, "
            f"which must fit in 253 characters (at most {253 - suffix} for the name)",
        )


def check_deployment_spec(report: Reporter, body: Mapping[str, Any]) -> None:
    """Everything but the metadata, which ``check.objects`` checks as for every kind."""
    spec = as_map(body.get("spec"))
    template = as_map(spec.get("template"))
    labels = as_map(as_map(template.get("metadata")).get("labels"))
    template_spec = as_map(template.get("spec"))
    tpath: FieldPath = ("spec", "template", "spec")
    check_pod_spec(report, tpath, template_spec)
    policy = template_spec.get("restartPolicy", "Always")
    if isinstance(policy, str) and policy != "Always":
        report.error(
            tpath + ("restartPolicy",),
            f"a Deployment's pods must have restartPolicy Always; got {policy!r}",
        )
    if "activeDeadlineSeconds" in template_spec:
        report.error(
            tpath + ("activeDeadlineSeconds",),
            "activeDeadlineSeconds is not supported in a Deployment's pods",
        )
    _check_selector(report, spec, labels)
    _check_strategy(report, spec)
    _check_times(report, spec)
    _check_name_room(report, as_map(body.get("metadata")).get("name"), spec.get("replicas", 1))
