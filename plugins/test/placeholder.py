"""Jinja test: is a secret's value a stand-in rather than a real secret?

``stack_db_password is algotrade.deploy.placeholder``: the one rule every role of the
collection checks secrets with (documentation in placeholder.yml).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# A known stand-in word (or an angle bracket, as in "<your password>") at the start,
# after any whitespace, in any case.
_PLACEHOLDER_START = re.compile(
    r"^\s*(changeme|change-me|change_me|example|password|secret|todo|xxx|<)", re.IGNORECASE
)
# A Jinja expression or statement left unrendered, e.g. an untrusted (vaulted) value.
_UNRENDERED = re.compile(r"\{\{|\{%")
# Ansible's vault-encrypted values (EncryptedString from ansible-core 2.19,
# AnsibleVaultEncryptedUnicode before it): str() gives the decrypted text.
_VAULT_TYPES = frozenset({"EncryptedString", "AnsibleVaultEncryptedUnicode"})


def _text(value: object) -> str | None:
    """The value as text, or None when it is no text (then it cannot be a real secret)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if type(value).__name__ in _VAULT_TYPES:
        return str(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def placeholder(value: object) -> bool:
    """True when the value is no real secret: empty or blank, a placeholder, an unrendered
    Jinja expression, or not text at all (None, a boolean, a list, a mapping)."""
    text = _text(value)
    if text is None:
        return True
    text = unicodedata.normalize("NFKC", text)
    return not text.strip() or bool(_PLACEHOLDER_START.match(text) or _UNRENDERED.search(text))


class TestModule:
    """Ansible's entry point for test plugins."""

    def tests(self) -> dict[str, Callable[[object], bool]]:
        return {"placeholder": placeholder}
