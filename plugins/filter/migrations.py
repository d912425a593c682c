"""Jinja filters for the database's schema migrations: the source's versioned files in
version order, a release's list of files with their checksums, and what a release's
list means for a database given its history.

``names | algotrade.deploy.migration_order``,
``pairs | algotrade.deploy.migration_files`` and
``files | algotrade.deploy.migration_plan(history, tables)`` (documentation in
migration_order.yml, migration_files.yml and migration_plan.yml).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Flyway's versioned migrations: V<version>__<description>.sql, the version digits with
# dots or underscores between them (V1_1 and V1.1 are version 1.1).
_VERSIONED = re.compile(r"V(?P<version>[0-9]+(?:[._][0-9]+)*)__(?P<description>[A-Za-z0-9_.-]+)\.sql")
# Any file of a release's list: it is named in the history table, in the compose file's
# comment and in messages, so it is a plain name.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.sql")
_IDENTIFIER = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE_TABLE = re.compile(
    r"\bCREATE\s+(?:(?P<temp>(?:GLOBAL\s+|LOCAL\s+)?TEMP(?:ORARY)?)\s+|UNLOGGED\s+)?TABLE\s+"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENTIFIER}(?:\s*\.\s*{_IDENTIFIER})*)",
    re.IGNORECASE,
)
_COMMENTS_AND_STRINGS = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$", re.DOTALL
)


def migration_version(name: str) -> tuple[int, ...]:
    """The version of a versioned migration's file name, as numbers (V010__x.sql: (10,)).

    Trailing zero parts do not count: V1.0 and V1 are the same version."""
    match = _VERSIONED.fullmatch(posixpath.basename(name))
    if not match:
        raise ValueError(
            f"{name}: not a versioned migration's name; name it V<version>__<description>.sql "
            "(e.g. V004__add_signals.sql: the version in digits, dots or underscores between them, "
            "two underscores, a description of letters, digits, dot, dash and underscore)"
        )
    parts = [int(part) for part in re.split(r"[._]", match["version"])]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def migration_order(names: Iterable[str]) -> list[str]:
    """Versioned migrations' paths or names in version order (V9 before V10); two files of
    one version are refused."""
    names = [str(name) for name in names]
    seen: dict[tuple[int, ...], str] = {}
    for name in names:
        version = migration_version(name)
        if version in seen:
            raise ValueError(f"{seen[version]} and {name} have the same version: give each migration its own")
        seen[version] = name
    return sorted(names, key=migration_version)


def sql_tables(text: str) -> list[str]:
    """The tables a SQL script creates (CREATE TABLE, not temporary ones), by name without
    schema, in the order of the script: the names the database keeps (unquoted ones folded
    to lower case). Comments and string literals are not read."""
    found: list[str] = []
    for match in _CREATE_TABLE.finditer(_COMMENTS_AND_STRINGS.sub(" ", text)):
        if match["temp"]:
            continue
        last = re.findall(_IDENTIFIER, match["name"])[-1]
        name = last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()
        if name not in found:
            found.append(name)
    return found


def _text(name: str, value: object) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{name}: not UTF-8 text; save the migration as UTF-8") from None
    return str(value)


def migration_files(pairs: Iterable[Sequence[object]]) -> list[dict[str, Any]]:
    """A release's list of migrations from (path, text) pairs in the order to apply: each
    file's name, version (V files; "" for others), the SHA-256 of its UTF-8 text, and for
    a first file that is not a V file (the setup script, which collections of before ran
    as the database's init script) setup: true and the tables it creates."""
    files: list[dict[str, Any]] = []
    for position, pair in enumerate(pairs):
        path, value = pair
        name = posixpath.basename(str(path))
        if not _PLAIN_NAME.fullmatch(name):
            raise ValueError(
                f"{path}: a migration's file name must be letters, digits, dot, dash and underscore, "
                "ending in .sql"
            )
        if any(entry["file"] == name for entry in files):
            raise ValueError(f"{name} is listed twice (file names must differ, whatever their directory)")
        text = _text(name, value)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name}: not UTF-8 text; save the migration as UTF-8") from None
        versioned = _VERSIONED.fullmatch(name)
        entry: dict[str, Any] = {
            "file": name,
            "version": versioned["version"] if versioned else "",
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        if position == 0 and not versioned:
            entry["setup"] = True
            entry["tables"] = sql_tables(text)
        files.append(entry)
    return files


def migration_plan(
    files: Iterable[Mapping[str, Any]],
    history: Iterable[Mapping[str, Any]] | None,
    tables: Iterable[str] = (),
) -> dict[str, Any]:
    """What a release's list of migrations means for a database.

    history is the rows of the history table (file, checksum, ...), or None when the
    database has no history table; tables, the tables the database holds. The plan:
    applied (files of the list applied before), pending (to apply, in the list's order),
    changed (files applied before whose content changed: the release is refused),
    baseline (the setup file to record as applied without running it: a database of
    before migrations, no history and the setup's tables), baseline_missing (the setup's
    tables such a database lacks while it holds others: refused), late (pending files
    listed before an applied one), unlisted (applied files the list does not name)."""
    files = list(files)
    rows = None if history is None else list(history)
    applied = {str(row["file"]): row for row in rows or []}
    present = {str(table) for table in tables}
    plan: dict[str, Any] = {
        "history": rows is not None,
        "applied": [],
        "pending": [],
        "changed": [],
        "baseline": "",
        "baseline_tables": [],
        "baseline_missing": [],
        "late": [],
        "unlisted": [],
    }
    setup = files[0] if files and files[0].get("setup") else None
    if rows is None and setup is not None:
        created = [str(t) for t in setup.get("tables", [])]
        found = [t for t in created if t in present] if created else sorted(present)
        if found and (not created or len(found) == len(created)):
            plan["baseline"] = setup["file"]
            plan["baseline_tables"] = found
        elif found:
            plan["baseline_tables"] = found
            plan["baseline_missing"] = [t for t in created if t not in present]
    last_applied = -1
    for position, entry in enumerate(files):
        name = str(entry["file"])
        row = applied.get(name)
        if row is not None:
            plan["applied"].append(name)
            last_applied = position
            if str(row.get("checksum", "")) != str(entry["sha256"]):
                plan["changed"].append(
                    {"file": name, "applied": str(row.get("checksum", "")), "now": str(entry["sha256"]),
                     "applied_at": str(row.get("applied_at", ""))}
                )  # fmt: skip
        elif name != plan["baseline"]:
            plan["pending"].append(name)
    listed = [str(entry["file"]) for entry in files]
    plan["late"] = [name for name in plan["pending"] if listed.index(name) < last_applied]
    plan["unlisted"] = [name for name in applied if name not in listed]
    return plan


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "migration_order": migration_order,
            "migration_files": migration_files,
            "migration_plan": migration_plan,
        }
