"""Jinja filters: a TOML document written by a TOML serializer (tomli-w), and what in a
value TOML cannot write.

``{'bots': stack_bots} | algotrade.deploy.to_toml`` and
``stack_bots | algotrade.deploy.toml_problems('stack_bots')`` (documentation in
to_toml.yml and toml_problems.yml).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

try:
    import tomli_w
except ImportError as error:  # reported when a filter is used, with what to install
    TOMLI_W_ERROR: ImportError | None = error
else:
    TOMLI_W_ERROR = None

MISSING_LIBRARY = (
    "the TOML filters need the Python package tomli-w on the controller, where Ansible runs: "
    "pip install tomli-w (the collection's requirements.txt lists it)"
)


def _key_path(path: str, key: str) -> str:
    """path.key, or path["key"] for a key that is not a bare word."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _plain(value: object, path: str, problems: list[str]) -> object:
    """The value as plain Python types that TOML has a form for; what it has not is noted in
    problems with its path (Ansible hands over its own subclasses of str, int, dict, list)."""
    if value is None:
        problems.append(f"{path} is null, which TOML cannot write: leave the key out, or give a value")
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            problems.append(f"{path} is {value}, beyond TOML's 64-bit integers: write it as text")
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        text = str(value)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{path} holds a character that is not Unicode text (a lone surrogate)")
        return text
    if isinstance(value, datetime.time) and value.tzinfo is not None:
        problems.append(f"{path} is a time of day with a UTC offset, which TOML cannot write")
        return value
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value
    if isinstance(value, Mapping):
        table: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(
                    f"{path} has the key {key!r} ({type(key).__name__}); TOML keys are text: quote it"
                )
                continue
            table[str(key)] = _plain(item, _key_path(path, key), problems)
        return table
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{path}[{index}]", problems) for index, item in enumerate(value)]
    problems.append(f"{path} is a {type(value).__name__}, which TOML cannot write")
    return None


def toml_problems(value: object, name: str = "value") -> list[str]:
    """What in the value (a table, a list or a scalar, as the value of a key) TOML cannot
    write, each named by its path from name, e.g. "stack_bots[1].fee is null, ..."; [] if
    nothing."""
    if TOMLI_W_ERROR is not None:
        raise ValueError(MISSING_LIBRARY) from TOMLI_W_ERROR
    problems: list[str] = []
    plain = _plain(value, name, problems)
    if not problems:
        try:
            tomli_w.dumps({"value": plain})
        except (TypeError, ValueError) as error:  # anything else the library refuses
            problems.append(f"{name}: {error}")
    return problems


def to_toml(value: object, name: str = "value") -> str:
    """The mapping as a TOML document; a value TOML cannot write fails, named by its path."""
    if TOMLI_W_ERROR is not None:
        raise ValueError(MISSING_LIBRARY) from TOMLI_W_ERROR
    if not isinstance(value, Mapping):
        raise ValueError(f"to_toml: {name} must be a mapping (a TOML document is a table)")
    problems = toml_problems(value, name)
    if problems:
        raise ValueError(f"to_toml: {'; '.join(problems)}")
    document = {str(key): _plain(item, _key_path(name, str(key)), []) for key, item in value.items()}
    return str(tomli_w.dumps(document))


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"to_toml": to_toml, "toml_problems": toml_problems}
