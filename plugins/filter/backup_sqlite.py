"""Jinja filter: the SQLite databases a backup holds, read from its manifest, and what a
restore does with the app-data volume's databases.

``manifest | algotrade.deploy.backup_sqlite(present)`` (documentation in backup_sqlite.yml).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

# Where the app-data volume is mounted in the app's containers and in the backup helper.
VOLUME = "/data"
# The one database a backup of manifest format 1 (the daemon's bots.db) held, and its file.
FORMAT1_DATABASE = f"{VOLUME}/bots.db"
FORMAT1_FILE = "bots.db"
# A path in the volume: names of letters, digits, dot, dash and underscore (the backup
# script's rule), no "." or ".." part.
_PART = re.compile(r"[A-Za-z0-9._-]+")
_FILE = re.compile(r"[A-Za-z0-9._-]+")
# The backup's other files: never a SQLite copy's name.
_RESERVED = ("db.dump", "globals.sql", "manifest.json")


def _path_problem(path: str) -> str | None:
    parts = path.split("/")
    if parts[:2] != ["", VOLUME.strip("/")] or len(parts) < 3:
        return f"{path!r} is not a file in {VOLUME}"
    for part in parts[2:]:
        if part in (".", "..") or not _PART.fullmatch(part):
            return f"{path!r} is not a plain path in {VOLUME} (letters, digits, '.', '-', '_')"
    return None


def _rows(value: object) -> dict[str, int] | None:
    """Row counts by table, or None when they are not that."""
    if not isinstance(value, Mapping):
        return None
    rows: dict[str, int] = {}
    for table, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return None
        rows[str(table)] = count
    return rows


def _summary(databases: Mapping[str, Mapping[str, Any]]) -> str:
    return "; ".join(
        f"{path}: " + (", ".join(f"{t}={n}" for t, n in sorted(db["tables"].items())) or "no tables")
        for path, db in sorted(databases.items())
    )


def backup_sqlite(manifest: Mapping[str, Any], present: list[str] | None = None) -> dict[str, Any]:
    """The backup's SQLite databases by path in the volume (file and row counts), whether it
    speaks for the whole volume, the paths of `present` (the databases there now) that a
    restore removes, a one-line summary, and what is wrong with the manifest."""
    problems: list[str] = []
    files = manifest.get("files") or {}
    tables = manifest.get("tables") or {}
    fmt = manifest.get("format", 1)
    databases: dict[str, dict[str, Any]] = {}
    if fmt == 1:
        # One bots.db, its row counts flat in tables.sqlite; other databases unknown to it.
        whole_volume = False
        managed = [FORMAT1_DATABASE]
        if FORMAT1_FILE in files:
            rows = _rows(tables.get("sqlite"))
            if rows is None:
                problems.append("tables.sqlite must give bots.db's row count of each table")
            databases[FORMAT1_DATABASE] = {"file": FORMAT1_FILE, "tables": rows or {}}
    elif fmt == 2:
        # Every SQLite database of the volume: those it lacks were not there.
        whole_volume = True
        managed = []
        listed = manifest.get("sqlite")
        counted = tables.get("sqlite")
        if not isinstance(listed, Mapping) or not isinstance(counted, Mapping):
            problems.append('"sqlite" and tables.sqlite must map each database in /data to its file and rows')
            listed, counted = {}, {}
        for path, file in sorted(listed.items()):
            path, file = str(path), str(file)
            problem = _path_problem(path)
            if problem:
                problems.append(f'"sqlite" names {problem}')
                continue
            if not _FILE.fullmatch(file) or file in _RESERVED or file not in files:
                problems.append(f"{path}'s copy {file!r} is not one of the backup's files")
                continue
            rows = _rows(counted.get(path))
            if rows is None:
                problems.append(f"tables.sqlite must give the row count of each table of {path}")
                rows = {}
            databases[path] = {"file": file, "tables": rows}
        unlisted = sorted(set(map(str, counted)) - set(map(str, listed)))
        if unlisted:
            problems.append(
                f'tables.sqlite counts databases that "sqlite" does not list: {", ".join(unlisted)}'
            )
    else:
        whole_volume, managed = False, []
        problems.append(f"manifest format {fmt!r} is not one this collection reads (1 or 2)")
    if len({db["file"] for db in databases.values()}) != len(databases):
        problems.append("two databases name one file")
    here = {str(p) for p in present or []}
    remove = sorted((here if whole_volume else here & set(managed)) - set(databases))
    return {
        "databases": databases,
        "whole_volume": whole_volume,
        "remove": remove,
        "summary": _summary(databases) or "none",
        "problems": problems,
    }


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[..., dict[str, Any]]]:
        return {"backup_sqlite": backup_sqlite}
