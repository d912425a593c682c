"""The filter plugins algotrade.deploy.to_toml and toml_problems: hostile values come back
whole from Python's TOML parser (tomllib), and what TOML cannot write is named by its path
(test_stack_templates.py renders them through the app's Config.toml).
"""

from __future__ import annotations

import datetime
import math
import sys
import tomllib
from typing import Any

import pytest
from testlib import collection_plugin

plugin = collection_plugin("filter", "to_toml")
to_toml = plugin.to_toml
toml_problems = plugin.toml_problems

# Keys and strings that a string template gets wrong: spaces, dots, quotes, backslashes,
# brackets, equals signs, hashes, an empty key, characters beyond the BMP, line breaks,
# control characters, TOML's own multi-line and literal quotes.
HOSTILE_KEYS = [
    "with space",
    "dotted.key",
    'double"quote',
    "single'quote",
    "back\\slash",
    "[bracket]",
    "equals = sign",
    "# hash",
    "",
    "ünïcode",
    "🔑 emoji",
    "new\nline",
    "tab\tkey",
]
HOSTILE_STRINGS = [
    'she said "hi"',
    "it's",
    "C:\\path\\to\\file",
    "\\u0041 is not A",
    "trailing backslash\\",
    "multi\nline\nstring\n",
    "windows\r\nline",
    '"""three quotes"""',
    "'''literal quotes'''",
    "emoji 🚀🔑 and 𝄞 (beyond the BMP)",
    "nul \x00 bell \x07 escape \x1b del \x7f",
    "# not a comment",
    "[not.a.table]",
    "key = value",
    "",
    " leading and trailing spaces ",
]

HOSTILE_BOTS: list[dict[str, Any]] = [
    {
        "name": "eth grid 🚀",
        "symbol": "ETH",
        "params": {
            "levels": 5,
            "spacing": 0.25,
            "enabled": True,
            "nested": {"deeper": {"deepest": "three tables down", "list": [1, 2, 3]}},
        },
        "tags": ["a", 'b"', "c\\"],
        **{key: f"value of {key!r}" for key in HOSTILE_KEYS},
    },
    {"name": "strings", "values": HOSTILE_STRINGS, **{f"s{i}": s for i, s in enumerate(HOSTILE_STRINGS)}},
    {
        "name": "numbers and mixtures",
        "big": 2**63 - 1,
        "small": -(2**63),
        "zero": 0,
        "tiny": 1e-300,
        "huge": 1e300,
        "negative_zero": -0.0,
        "infinity": math.inf,
        "minus_infinity": -math.inf,
        "mixed": [1, "two", 3.0, True, {"five": 5}, [6, ["seven"]]],
        "empty_list": [],
        "empty_table": {},
        "start": datetime.date(2026, 1, 2),
        "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        "daily": datetime.time(6, 30),
        "tables_in_a_list": [{"a": 1}, {"b": {"c": "d"}}],
        "long_tables_in_a_list": [{"text": "x" * 120}, {"text": "y" * 120, "sub": {"k": "v"}}],
    },
]


def roundtrip(document: dict[str, Any]) -> dict[str, Any]:
    return tomllib.loads(to_toml(document))


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_hostile_key_comes_back_whole(key: str) -> None:
    document = {key: "v", "table": {key: {key: [key]}}, "bots": [{key: key}, {key: {key: 1}}]}
    assert roundtrip(document) == document


@pytest.mark.parametrize("text", HOSTILE_STRINGS)
def test_a_hostile_string_comes_back_whole(text: str) -> None:
    document = {"top": text, "table": {"value": text, "list": [text, text]}, "bots": [{"name": text}]}
    assert roundtrip(document) == document


def test_hostile_bots_come_back_whole() -> None:
    """Nested tables, arrays of tables, mixed arrays, every hostile key and string at once,
    beside the app's own sections."""
    document = {
        "server": {"host": "app", "port": 8080},
        "database": {"url": "postgresql://u:p%2F@db:5432/d", "max_connections": 10},
        "bots": HOSTILE_BOTS,
    }
    parsed = roundtrip(document)
    numbers = parsed["bots"][2]
    assert math.copysign(1.0, numbers["negative_zero"]) == -1.0
    assert parsed == document
    assert toml_problems(HOSTILE_BOTS, "stack_bots") == []


def test_nan_is_written_as_toml_nan() -> None:
    assert math.isnan(roundtrip({"x": {"nan": math.nan}})["x"]["nan"])


def test_the_output_is_one_document_of_the_given_sections() -> None:
    """Tables stay where they belong: a key of a bot does not land in the section written
    after it (what a template that writes `[[bots]]` then `key = value` lines risks)."""
    text = to_toml({"server": {"port": 1}, "bots": [{"name": "a", "sub": {"x": 1}}, {"name": "b"}]})
    assert tomllib.loads(text) == {
        "server": {"port": 1},
        "bots": [{"name": "a", "sub": {"x": 1}}, {"name": "b"}],
    }


# (value given as stack_bots, the text naming its path and the trouble)
REFUSED: list[tuple[str, object, str]] = [
    ("null", [{"name": "a", "fee": None}], "stack_bots[0].fee is null, which TOML cannot write"),
    ("null-deep", [{"name": "a"}, {"p": {"q": [1, None]}}], "stack_bots[1].p.q[1] is null"),
    ("null-hostile-key", [{"my key": None}], "stack_bots[0]['my key'] is null"),
    ("null-bot", [None], "stack_bots[0] is null"),
    ("int-key", [{"name": "a", "levels": {1: 0.5}}], "stack_bots[0].levels has the key 1 (int); TOML keys"),
    ("bool-key", [{True: "x"}], "stack_bots[0] has the key True (bool)"),
    ("set", [{"name": "a", "s": {1, 2}}], "stack_bots[0].s is a set, which TOML cannot write"),
    ("bytes", [{"name": "a", "b": b"\x00"}], "stack_bots[0].b is a bytes, which TOML cannot write"),
    ("lone-surrogate", [{"name": "\ud800"}], "stack_bots[0].name holds a character that is not Unicode text"),
    ("int-too-big", [{"name": "a", "n": 2**63}], "stack_bots[0].n is 9223372036854775808, beyond"),
    ("int-too-small", [{"name": "a", "n": -(2**63) - 1}], "beyond TOML's 64-bit integers"),
    (
        "time-with-offset",
        [{"at": datetime.time(1, 2, tzinfo=datetime.UTC)}],
        "stack_bots[0].at is a time of day with a UTC offset",
    ),
]


@pytest.mark.parametrize(
    ("value", "message"), [(v, m) for _i, v, m in REFUSED], ids=[i for i, _v, _m in REFUSED]
)
def test_what_toml_cannot_write_is_named_by_its_path(value: object, message: str) -> None:
    """Seen to fail with the null, surrogate, 64-bit and offset-time checks taken out of
    _plain: tomli-w wrote the surrogate and the big integers (which tomllib then read, but
    the app's TOML parser refuses), and its TypeError for null named no path."""
    problems = toml_problems(value, "stack_bots")
    assert any(message in problem for problem in problems), problems
    with pytest.raises(ValueError, match="to_toml: "):
        to_toml({"bots": value}, "Config.toml")


def test_every_problem_is_reported_at_once() -> None:
    problems = toml_problems([{"a": None}, {"b": None, 3: "x"}], "stack_bots")
    assert len(problems) == 3, problems


@pytest.mark.parametrize("value", ["text", 1, 2.5, True, [], {}, [1, "a"], datetime.date(2026, 1, 1)])
def test_a_writable_value_has_no_problem(value: object) -> None:
    assert toml_problems(value, "x") == []


def test_a_document_must_be_a_table() -> None:
    with pytest.raises(ValueError, match="must be a mapping"):
        to_toml(["not", "a", "table"], "Config.toml")


def test_without_tomli_w_the_filters_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller without tomli-w loads the plugin (Ansible loads every filter file) and
    gets a message naming the package when a filter is used, as the settings check does
    before any host changes. Seen to fail with the import unguarded (ImportError on load)."""
    monkeypatch.setitem(sys.modules, "tomli_w", None)  # import tomli_w raises ImportError
    bare = collection_plugin("filter", "to_toml")
    with pytest.raises(ValueError, match="need the Python package tomli-w on the controller"):
        bare.to_toml({"a": 1})
    with pytest.raises(ValueError, match="need the Python package tomli-w on the controller"):
        bare.toml_problems([], "stack_bots")
