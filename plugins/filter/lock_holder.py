"""Jinja filter: the run that holds a deploy lock, read from the lock file's slurped content.

``lock.content | algotrade.deploy.lock_holder`` (documentation in lock_holder.yml).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

_FIELDS = ("id", "by", "since", "version", "host")


def lock_holder(content: object) -> dict[str, str]:
    """The lock's fields (id, by, since, version, host) as text; a lock that is empty, cut
    short or not one the lock role wrote gives {"corrupt": why} instead of an error."""
    try:
        text = base64.b64decode(str(content), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return {"corrupt": "not text"}
    if not text.strip():
        return {"corrupt": "empty"}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"corrupt": "not JSON (cut short?)"}
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        return {"corrupt": "no run id"}
    return {field: str(data[field]) for field in _FIELDS if field in data}


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[[object], dict[str, str]]]:
        return {"lock_holder": lock_holder}
