"""The container list read item by item (``engine.client.json_array_items``) and into a
``HostState`` in one pass, repeated label texts kept once (``engine.live``)."""

from __future__ import annotations

import json

import pytest

from reconciler.core import labels as L
from reconciler.engine.client import json_array_items
from reconciler.engine.live import host_state


@pytest.mark.parametrize(
    "text", ["[]", " [ ] ", '[{"a": 1}]', '[{"a": [1, {"b": "]"}]}, "x", 2, null]', "\n[1,\n 2 ]\n"]
)
def test_items_are_those_json_reads(text: str) -> None:
    assert list(json_array_items(text)) == json.loads(text)


def test_items_are_decoded_as_they_are_reached() -> None:
    items = json_array_items('[{"a": 1}, {"b": 2}, not json]')
    assert next(items) == {"a": 1} and next(items) == {"b": 2}
    with pytest.raises(ValueError):
        next(items)


def test_an_answer_that_is_no_array_is_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON array"):
        list(json_array_items('{"message": "no"}'))


def _entry(name: str, role: str, created: int = 1, revision: str = "") -> dict[str, object]:
    labels = {
        L.MANAGED_BY: L.MANAGED_BY_VALUE,
        L.INSTANCE: "t",
        L.ROLE: role,
        L.POD: name,
        L.POD_LABELS: json.dumps({"app": "web"}),
        L.REVISION: revision,
    }
    return {"Id": name + role, "Names": [f"/{name}"], "Labels": labels, "Created": created}


def test_one_pass_keeps_repeated_label_texts_once_and_finds_the_newest_marker() -> None:
    listed = [
        _entry("a", L.ROLE_INFRA),
        _entry("b", L.ROLE_INFRA),
        _entry("m1", L.ROLE_STATE, created=5, revision="r5"),
        _entry("m2", L.ROLE_STATE, created=9, revision="r9"),
        _entry("e", L.ROLE_ENDPOINTS),
        _entry("tools", L.ROLE_TOOLS),
        {"Id": "foreign", "Labels": {L.MANAGED_BY: "someone else"}},
    ]
    # each entry decoded apart: equal texts, different objects, as a decoder gives them
    state = host_state("h1", "t", (json.loads(json.dumps(e)) for e in listed))
    assert [c.labels[L.POD] for c in state.containers] == ["a", "b"]
    assert [c.labels[L.POD] for c in state.markers] == ["e"]
    assert state.applied_revision == "r9"
    first, second = (c.labels for c in state.containers)
    assert first[L.POD_LABELS] is second[L.POD_LABELS]  # kept once
