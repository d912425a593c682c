"""Jinja filter: a secret as every place reads it, without its trailing line breaks.

``stack_db_password | algotrade.deploy.secret_text`` (documentation in secret_text.yml).
"""

from __future__ import annotations

from collections.abc import Callable

# What tools leave at the end of a secret: ansible-vault encrypt_string --stdin-name keeps
# the newline of the line it read, editors end a file with one, Windows with CR LF.
LINE_BREAKS = "\r\n"


def secret_text(value: object) -> str:
    """The value as text without its trailing CR and LF; everything else, spaces included,
    as given. None (a key left empty in YAML) is the empty text. str() of a vaulted value
    is its decrypted text."""
    if value is None:
        return ""
    return str(value).rstrip(LINE_BREAKS)


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[[object], str]]:
        return {"secret_text": secret_text}
