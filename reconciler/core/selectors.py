"""Kubernetes label selectors (``app=web,tier!=db,env in (a,b),!legacy``). Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.core import names
from reconciler.core.errors import SelectorError
from reconciler.core.text import shown

# Possessive quantifiers (``*+``, ``++``): no run is ever given back, so a failed match
# costs one scan of the text, never a retry per split of a run of blanks.
_SET_EXPR = re.compile(r"^\s*+(!?)\s*+([^\s=!()]++)\s++(in|notin)\s*+\(([^()]*+)\)\s*+$")
_EQ_EXPR = re.compile(r"^\s*+([^\s=!()]++)\s*+(==|=|!=)\s*+([^\s=!(),]*+)\s*+$")
_EXISTS_EXPR = re.compile(r"^\s*+(!?)\s*+([^\s=!(),]++)\s*+$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return present and value == self.values[0]
        if self.operator == "!=":
            return not present or value != self.values[0]
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(_render(r) for r in self.requirements)


def _render(r: Requirement) -> str:
    if r.operator in ("=", "!="):
        return f"{r.key}{r.operator}{r.values[0]}"
    if r.operator in ("in", "notin"):
        return f"{r.key} {r.operator} ({','.join(r.values)})"
    return r.key if r.operator == "exists" else f"!{r.key}"


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _checked(part: str, requirement: Requirement) -> Requirement:
    """Reject what Kubernetes rejects: bad keys and values, empty in/notin sets.

    Without this a typo would select silently: ``!app>1`` would read as "no label named
    ``app>1``" and match every pod (``reconciler down -l`` would remove them all).
    """
    problem = names.qualified_name(requirement.key)
    if problem:
        raise SelectorError(
            f"{shown(part.strip())}: invalid label key {shown(requirement.key)}: {problem}"
        )
    if requirement.operator in ("in", "notin") and not requirement.values:
        raise SelectorError(
            f"{shown(part.strip())}: {requirement.operator} needs at least one value"
        )
    for value in requirement.values:
        problem = names.label_value(value)
        if problem:
            raise SelectorError(
                f"{shown(part.strip())}: invalid label value {shown(value)}: {problem}"
            )
    return requirement


def parse_selector(text: str | None) -> Selector:
    """Parse ``-l`` text; an empty or missing selector matches everything."""
    if text is None or not text.strip():
        return Selector()
    requirements: list[Requirement] = []
    for part in _split(text):
        if match := _SET_EXPR.match(part):
            if match[1]:
                raise SelectorError(f"{shown(part.strip())}: '!' cannot be combined with in/notin")
            values = tuple(v.strip() for v in match[4].split(",") if v.strip())
            requirements.append(_checked(part, Requirement(match[2], match[3], values)))
        elif match := _EQ_EXPR.match(part):
            operator = "!=" if match[2] == "!=" else "="
            requirements.append(_checked(part, Requirement(match[1], operator, (match[3],))))
        elif match := _EXISTS_EXPR.match(part):
            operator = "!exists" if match[1] else "exists"
            requirements.append(_checked(part, Requirement(match[2], operator)))
        else:
            raise SelectorError(
                f"cannot parse selector {shown(part.strip())} (examples: app=web, tier!=db, "
                "env in (prod,staging), !legacy)"
            )
    return Selector(tuple(requirements))
