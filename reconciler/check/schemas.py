"""The JSON Schemas of ``schemas/``: finding and loading them, and one check per kind.

Each kind's schema is compiled into nested closures (``compiler``) when first needed; a
schema the compiler cannot handle falls back to ``jsonschema``'s validator, which is also
the reference the compiled checks are tested against (``reference_validator``). Both are
built lazily because importing ``jsonschema`` is a large share of the command's start-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from reconciler.check.compiler import Compiler, Issue
from reconciler.core.errors import UnsupportedSchema

#: The schema of each kind the reconciler reads, under ``schemas/v1``.
SCHEMA_FILES = {
    "Pod": "pod.json",
    "ReplicationController": "replicationcontroller.json",
    "Service": "service.json",
    "Secret": "secret.json",
    "ConfigMap": "configmap.json",
    "PersistentVolumeClaim": "persistentvolumeclaim.json",
    "Deployment": "deployment.json",  # apps/v1: its apiVersion is the schema's const
}


def schema_dir() -> Path:
    """Where the JSON Schemas live: inside an installed wheel, or the source checkout."""
    package = Path(__file__).resolve().parent.parent  # reconciler/
    for candidate in (package / "schemas", package.parent / "schemas"):
        if (candidate / "v1" / "_defs.json").is_file():
            return candidate
    raise FileNotFoundError("the reconciler's schemas/ directory is missing from this install")


@cache
def _validator_class() -> Any:
    """``jsonschema``'s 2020-12 validator, taught the ``x-unhonoured`` keyword.

    Built on first use: importing ``jsonschema`` (and ``referencing``, ``attrs``, ``rpds``)
    is a large share of the command's start-up, and validation needs it only for a schema
    the compiler cannot handle, which none of ours is.
    """
    from jsonschema import Draft202012Validator, ValidationError, validators

    def unhonoured(
        validator: Any, why: str, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        yield ValidationError(why)

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"x-unhonoured": unhonoured}
    )


def __getattr__(name: str) -> Any:
    """``_Validator`` (the reference validator class) is made when first asked for."""
    if name == "_Validator":
        return _validator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SchemaCheck = Callable[[Mapping[str, Any]], list[Any]]


@cache
def schema_documents() -> dict[str, dict[str, Any]]:
    """Every schema under ``schemas/v1``, keyed by its ``$id``."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted((schema_dir() / "v1").glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        documents[contents["$id"]] = contents
    return documents


def schema_id(kind: str) -> str:
    return next(
        schema_id
        for schema_id in schema_documents()
        if schema_id.rsplit("/", 1)[-1] == SCHEMA_FILES[kind]
    )


def reference_validator(kind: str) -> Any:
    """The ``jsonschema`` validator for ``kind``: the reference the compiled checks follow."""
    from referencing import Registry, Resource

    registry: Registry[Any] = Registry().with_resources(
        (sid, Resource.from_contents(doc)) for sid, doc in schema_documents().items()
    )
    return _validator_class()(schema_documents()[schema_id(kind)], registry=registry)


@cache
def schema_checks() -> dict[str, SchemaCheck]:
    """One checker per kind: compiled where possible, ``jsonschema`` otherwise."""
    compiler = Compiler(schema_documents())
    checks: dict[str, SchemaCheck] = {}
    for kind in SCHEMA_FILES:
        try:
            compiled = compiler.compile(schema_id(kind))
        except UnsupportedSchema:
            validator = reference_validator(kind)

            def run_reference(body: Mapping[str, Any], v: Any = validator) -> list[Any]:
                return list(v.iter_errors(body))

            checks[kind] = run_reference
            continue

        def run(body: Mapping[str, Any], check: Any = compiled) -> list[Any]:
            out: list[Issue] = []
            check(body, (), out)
            return out

        checks[kind] = run
    return checks
