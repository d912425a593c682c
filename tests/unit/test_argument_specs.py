"""Every role documents each public variable once: defaults/main.yml == meta/argument_specs.yml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = sorted(p.parent.parent for p in Path(__file__).parents[2].glob("roles/*/defaults/main.yml"))


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def _options(role: Path) -> dict[str, Any]:
    spec = _load(role / "meta" / "argument_specs.yml")
    options = spec["argument_specs"]["main"]["options"]
    assert isinstance(options, dict)
    return options


def test_roles_found() -> None:
    """Guards the parametrized tests below against silently running on nothing."""
    assert "docker" in [r.name for r in ROLES]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_defaults_and_argument_specs_have_the_same_keys(role: Path) -> None:
    defaults = set(_load(role / "defaults" / "main.yml"))
    options = set(_options(role))
    assert defaults - options == set(), "in defaults/main.yml only"
    assert options - defaults == set(), "in meta/argument_specs.yml only"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_argument_spec_defaults_match_defaults_file(role: Path) -> None:
    defaults = _load(role / "defaults" / "main.yml")
    for name, option in _options(role).items():
        assert option.get("default") == defaults[name], f"{name}: spec default differs"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_public_variables_carry_the_role_prefix(role: Path) -> None:
    prefix = f"{role.name}_"
    assert [n for n in _options(role) if not n.startswith(prefix)] == []


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_option_is_typed_and_described(role: Path) -> None:
    for name, option in _options(role).items():
        assert option.get("type"), f"{name} has no type"
        assert option.get("description"), f"{name} has no description"
