"""Jinja filter: a PostgreSQL connection URL with every part encoded for its place.

``{'user': u, 'password': p, 'host': 'db', 'port': 5432, 'database': d} |
algotrade.deploy.postgres_url`` (documentation in postgres_url.yml).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote


def _part(value: object) -> str:
    """Percent-encode all but RFC 3986's unreserved characters: a value is then one
    user, password or path segment for every parser (sqlx and the url crate, libpq),
    whatever it holds. str() of a vaulted value is its decrypted text."""
    return quote(str(value), safe="")


def postgres_url(parts: Mapping[str, object]) -> str:
    """postgresql://USER:PASSWORD@HOST:PORT/DATABASE, user, password and database encoded."""
    missing = {"user", "password", "host", "port", "database"} - set(parts)
    if missing:
        raise ValueError(f"postgres_url needs {', '.join(sorted(missing))}")
    port = int(str(parts["port"]))
    if not 0 < port < 65536:
        raise ValueError(f"postgres_url: port {port} is not a TCP port")
    host = str(parts["host"])
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"postgresql://{_part(parts['user'])}:{_part(parts['password'])}@{host}:{port}/{_part(parts['database'])}"


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[[Mapping[str, object]], str]]:
        return {"postgres_url": postgres_url}
