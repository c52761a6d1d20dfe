"""Label selectors as ``kubectl -l`` reads them."""

from __future__ import annotations

import re

import pytest

from reconciler.core.errors import SelectorError
from reconciler.core.selectors import Requirement, Selector, parse_selector

WEB = {"app": "web", "tier": "front", "env": "prod"}
DB = {"app": "db", "tier": "back", "env": "staging", "legacy": "yes"}
BARE: dict[str, str] = {}


def matching(text: str) -> list[str]:
    selector = parse_selector(text)
    return [
        n for n, labels in (("web", WEB), ("db", DB), ("bare", BARE)) if selector.matches(labels)
    ]


@pytest.mark.parametrize("text", [None, "", "   "])
def test_empty_selector_matches_everything(text: str | None) -> None:
    assert parse_selector(text) == Selector()
    assert matching(text or "") == ["web", "db", "bare"]


@pytest.mark.parametrize("text", ["app=web", "app==web", " app = web ", "app == web"])
def test_equality(text: str) -> None:
    assert parse_selector(text).requirements == (Requirement("app", "=", ("web",)),)
    assert matching(text) == ["web"]


def test_inequality_matches_objects_without_the_label() -> None:
    assert parse_selector("app!=web").requirements == (Requirement("app", "!=", ("web",)),)
    assert matching("app!=web") == ["db", "bare"]
    assert matching("app != web") == ["db", "bare"]


def test_empty_value() -> None:
    assert parse_selector("app=").requirements == (Requirement("app", "=", ("",)),)
    assert matching("app=") == []
    assert parse_selector("app=").matches({"app": ""})


def test_in() -> None:
    assert parse_selector("env in (prod, qa)").requirements == (
        Requirement("env", "in", ("prod", "qa")),
    )
    assert matching("env in (prod,qa)") == ["web"]
    assert matching("env in (prod,staging)") == ["web", "db"]
    assert matching("env in(prod)") == ["web"]


def test_notin_matches_objects_without_the_label() -> None:
    assert matching("env notin (prod)") == ["db", "bare"]
    assert matching("env notin (prod,staging)") == ["bare"]


def test_exists_and_not_exists() -> None:
    assert parse_selector("legacy").requirements == (Requirement("legacy", "exists"),)
    assert parse_selector("!legacy").requirements == (Requirement("legacy", "!exists"),)
    assert matching("legacy") == ["db"]
    assert matching("!legacy") == ["web", "bare"]
    assert matching(" ! legacy ") == ["web", "bare"]


def test_requirements_are_anded() -> None:
    assert matching("tier=front,env=prod") == ["web"]
    assert matching("tier=front,env=staging") == []
    assert matching("app,!legacy") == ["web"]


def test_commas_inside_parentheses_do_not_split() -> None:
    selector = parse_selector("env in (prod,staging),tier notin (back, middle),app")
    assert selector.requirements == (
        Requirement("env", "in", ("prod", "staging")),
        Requirement("tier", "notin", ("back", "middle")),
        Requirement("app", "exists"),
    )
    assert matching("env in (prod,staging),tier notin (back, middle),app") == ["web"]


def test_prefixed_keys() -> None:
    selector = parse_selector("example.com/team=core,!example.com/legacy")
    assert selector.matches({"example.com/team": "core"})
    assert not selector.matches({"example.com/team": "core", "example.com/legacy": ""})


def test_render_round_trips() -> None:
    text = "app=web,tier!=db,env in (prod,qa),env notin (dev),legacy,!old"
    selector = parse_selector(text)
    assert str(selector) == text
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize(
    "text",
    [
        "app=web,",  # a trailing comma leaves an empty requirement
        ",app=web",
        "app=web=x",
        "app=(web)",
        "env in (a,b",  # unbalanced
        "env in a,b)",
        "env in (a,(b))",
        "a b",
        "!app=web",
        "=web",
    ],
)
def test_errors(text: str) -> None:
    with pytest.raises(SelectorError, match="cannot parse selector"):
        parse_selector(text)


def test_not_cannot_be_combined_with_a_set() -> None:
    with pytest.raises(SelectorError, match="'!' cannot be combined with in/notin"):
        parse_selector("!env in (prod)")


def test_error_names_the_bad_part() -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector("app=web, tier = = front ")
    assert "'tier = = front'" in str(info.value)
    assert "examples:" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app>1", "invalid label key 'app>1'"),
        # would otherwise read as "no label named app>1" and select every pod for `down -l`
        ("!app>1", "invalid label key 'app>1'"),
        ("ap$p=web", "invalid label key 'ap$p'"),
        ("-app=web", "invalid label key '-app'"),
        ("Bad_Prefix/app=web", "invalid label key 'Bad_Prefix/app'"),
        ("app=web-", "invalid label value 'web-'"),
        ("env in (a b)", "invalid label value 'a b'"),
        ("app=" + "x" * 64, "must be no more than 63 characters"),
        ("env in ()", "in needs at least one value"),
        ("env notin ( )", "notin needs at least one value"),
    ],
)
def test_invalid_keys_values_and_empty_sets_are_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(message)):
        parse_selector(text)
