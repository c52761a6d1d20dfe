"""Name and label syntax with the API server's limits (reconciler/names.py)."""

from __future__ import annotations

import pytest

from reconciler.core import names


@pytest.mark.parametrize("value", ["a", "web", "web-1", "1web", "0", "a" * 63, "keystone-db"])
def test_dns1123_label_accepts(value: str) -> None:
    assert names.dns1123_label(value) is None


@pytest.mark.parametrize(
    "value", ["", "Web", "web_1", "-web", "web-", "web.internal", "we b", "wéb", "web\n"]
)
def test_dns1123_label_refuses(value: str) -> None:
    problem = names.dns1123_label(value)
    assert problem is not None
    assert problem.startswith("must be a DNS-1123 label: lower-case letters, digits and '-'")


def test_dns1123_label_length_is_checked_first() -> None:
    assert names.dns1123_label("a" * 64) == "must be no more than 63 characters (it has 64)"
    assert names.dns1123_label("A" * 64) == "must be no more than 63 characters (it has 64)"


@pytest.mark.parametrize(
    "value", ["web", "example.com", "a.b-c.d", "1.2.3", ("a" * 63 + ".") * 3 + "a" * 61]
)
def test_dns1123_subdomain_accepts(value: str) -> None:
    assert len(value) <= 253
    assert names.dns1123_subdomain(value) is None


@pytest.mark.parametrize(
    "value", ["", "KeystoneDB", "a..b", ".a", "a.", "a_b.com", "a.-b", "web\n", "a/b"]
)
def test_dns1123_subdomain_refuses(value: str) -> None:
    problem = names.dns1123_subdomain(value)
    assert problem is not None
    assert problem.startswith("must be a DNS-1123 subdomain")


def test_dns1123_subdomain_length() -> None:
    long = ("a" * 63 + ".") * 3 + "a" * 62
    assert len(long) == 254
    assert names.dns1123_subdomain(long) == "must be no more than 253 characters (it has 254)"


@pytest.mark.parametrize("value", ["db", "keystone-public", "a1", "a" * 63])
def test_dns1035_label_accepts(value: str) -> None:
    assert names.dns1035_label(value) is None


@pytest.mark.parametrize("value", ["1-db", "1db", "db.internal", "Db", "db-", "", "db\n"])
def test_dns1035_label_refuses(value: str) -> None:
    problem = names.dns1035_label(value)
    assert problem is not None
    assert "must be a DNS-1035 label" in problem
    assert "starting with a letter" in problem


def test_dns1035_label_length() -> None:
    assert names.dns1035_label("a" * 64) == "must be no more than 63 characters (it has 64)"


@pytest.mark.parametrize("value", ["http", "h2", "keystone-admin", "a" * 15, "x-1-y"])
def test_port_name_accepts(value: str) -> None:
    assert names.port_name(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a" * 16, "must be no more than 15 characters (it has 16)"),
        ("keystone-public", None),
        ("keystone-publics", "must be no more than 15 characters (it has 16)"),
        ("80", "must contain at least one letter"),
        ("1-2", "must contain at least one letter"),
        ("a--b", "must contain only lower-case letters, digits and single '-'"),
        ("-http", "must contain only lower-case letters, digits and single '-'"),
        ("http-", "must contain only lower-case letters, digits and single '-'"),
        ("HTTP", "must contain only lower-case letters, digits and single '-'"),
        ("my_port", "must contain only lower-case letters, digits and single '-'"),
        ("", "must contain only lower-case letters, digits and single '-'"),
        ("http\n", "must contain only lower-case letters, digits and single '-'"),
    ],
)
def test_port_name_problems(value: str, problem: str | None) -> None:
    found = names.port_name(value)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    "value",
    ["app", "App", "a_b.c-d", "example.com/app", "k8s.io/x", "a" * 63, "x/" + "a" * 63, "A1"],
)
def test_qualified_name_accepts(value: str) -> None:
    assert names.qualified_name(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/app", "prefix before '/' must not be empty"),
        ("example.com/", "name part must not be empty"),
        ("", "name part must not be empty"),
        ("Example.com/team", "prefix 'Example.com' must be a DNS-1123 subdomain"),
        ("a/b/c", "prefix 'a/b' must be a DNS-1123 subdomain"),
        ("a" * 64, "name part must be no more than 63 characters (it has 64)"),
        ("-tier", "name part must consist of letters, digits, '-', '_' or '.'"),
        ("tier-", "name part must consist of letters, digits, '-', '_' or '.'"),
        ("ti er", "name part must consist of letters, digits, '-', '_' or '.'"),
        ("tier\n", "name part must consist of letters, digits, '-', '_' or '.'"),
    ],
)
def test_qualified_name_problems(value: str, problem: str) -> None:
    found = names.qualified_name(value)
    assert found is not None and found.startswith(problem), found


@pytest.mark.parametrize("value", ["", "web", "v1.0_beta-2", "A", "a" * 63])
def test_label_value_accepts(value: str) -> None:
    assert names.label_value(value) is None


@pytest.mark.parametrize("value", ["-rc1", "rc1-", "1.0 beta", "a/b", "é", "web\n"])
def test_label_value_refuses(value: str) -> None:
    found = names.label_value(value)
    assert found is not None
    assert found.startswith("must be empty or consist of letters, digits, '-', '_' or '.'")


def test_label_value_length() -> None:
    assert names.label_value("a" * 64) == "must be no more than 63 characters (it has 64)"


@pytest.mark.parametrize("value", ["PATH", "MYSQL_USER", "my.var-1", "_", "a:b", "~!"])
def test_env_name_accepts(value: str) -> None:
    assert names.env_name(value) is None


@pytest.mark.parametrize("value", ["", "A=B", "A B", "É", "A\tB", "A\n"])
def test_env_name_refuses(value: str) -> None:
    assert names.env_name(value) == (
        "must consist of printable ASCII characters other than space and '='"
    )
