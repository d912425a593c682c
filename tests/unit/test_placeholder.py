"""The test plugin algotrade.deploy.placeholder: the one rule for secrets that are no real secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.parsing.vault import EncryptedString, VaultLib, VaultSecret, VaultSecretsContext
from testlib import REPO, ansible_playbook, collection_plugin

placeholder = collection_plugin("test", "placeholder").placeholder

PLACEHOLDERS = [
    # The words, at the start, in any case (the rule the roles had before the plugin).
    "changeme",
    "changeme-changeme-42",
    "ChangeMe-0123456789",
    "change-me please",
    "CHANGE_ME",
    "example-0x00",
    "Example key",
    "password-password",
    "PASSWORD123456789012",
    "secret",
    "Secret-for-the-db",
    "todo",
    "TODO: put the real one here",
    "xxx",
    "xxxxxxxxxxxxxxxxxxxxxxxx",
    "<your password>",
    "<",
    # After whitespace of any kind.
    "  changeme",
    "\tpassword",
    "\n\nsecret",
    "\u00a0changeme",  # no-break space
    "\u3000example",  # ideographic space
    # Compatibility forms of the same letters.
    "\uff43\uff48\uff41\uff4e\uff47\uff45\uff4d\uff45",  # full-width "changeme"
    "\u017fecret",  # long s
    # Jinja left unrendered (e.g. written inside a vault, which Ansible does not template).
    "{{ vault_stack_db_password }}",
    "{{vault_x}}",
    "k3P9vQx7{{ x }}mW2rT5nZ",
    "{% raw %}k3P9vQx7mW2rT5nZ{% endraw %}",
    # Empty or blank.
    "",
    " ",
    "\t\r\n",
    "\u00a0\u2003\u3000",
]

REAL = [
    "k3P9vQx7mW2rT5nZ",
    "q1Zr8+9/Jd0kV3xQ2mN7cW5bT4yH6uLp",  # like `openssl rand -base64 24`
    "db-password-9f8e7d6c5b4a",  # a word later in the value is no placeholder
    "my-secret-is-long-enough",
    "a-secret-in-clear-text",
    "exampl3-but-not-quite",
    "passwor-d-9f8e7d6c5b4a",
    "xx-9f8e7d6c5b4a",
    ">9f8e7d6c5b4a",
    "{ {not jinja} }",
    "}}-9f8e7d6c5b4a",
    "{-{9f8e7d6c5b4a",
    "пароль-Ж8ш2лЮ9ьЦ4",
    "密码-9f8e7d6c5b4a",
    "\U0001f511\U0001f511\U0001f511\U0001f511",
    "0x" + "ab" * 32,
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders(value: str) -> None:
    assert placeholder(value) is True


@pytest.mark.parametrize("value", REAL)
def test_real_values(value: str) -> None:
    assert placeholder(value) is False


def test_the_examples_in_the_documentation() -> None:
    assert placeholder("my-password") is False
    assert placeholder("{{ vault_db_password }}") is True


class Tagged(str):
    """A str subclass, as Ansible passes tagged and unsafe text."""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Tagged("changeme-42"), True),
        (Tagged("k3P9vQx7mW2rT5nZ"), False),
        (b"changeme", True),
        (b"  {{ x }}", True),
        (b"", True),
        (b"k3P9vQx7mW2rT5nZ", False),
        (b"\xff\xfe-9f8e7d6c5b4a", False),  # not UTF-8: read with replacement characters
        (1234567890123456, False),
        (3.25, False),
    ],
    ids=["str-subclass", "str-subclass-real", "bytes", "bytes-jinja", "bytes-empty", "bytes-real",
         "bytes-not-utf-8", "int", "float"],
)  # fmt: skip
def test_other_text_types(value: object, expected: bool) -> None:
    assert placeholder(value) is expected


@pytest.mark.parametrize(
    "value",
    [None, True, False, [], ["k3P9vQx7mW2rT5nZ"], {}, {"k3P9vQx7mW2rT5nZ": 1}, ("a",), object()],
    ids=["none", "true", "false", "empty-list", "list", "empty-dict", "dict", "tuple", "object"],
)
def test_what_is_no_text_is_no_secret(value: object) -> None:
    """A check built on the test fails closed."""
    assert placeholder(value) is True


def test_long_values_are_answered_at_once() -> None:
    assert placeholder(" " * 1_000_000 + "k") is False
    assert placeholder(" " * 1_000_000) is True
    assert placeholder("k" * 1_000_000 + "{{") is True


def vaulted(plaintext: str) -> EncryptedString:
    secret = VaultSecret(b"unit-test-vault-password")
    ciphertext = VaultLib([("default", secret)]).encrypt(plaintext, secret).decode()
    return EncryptedString(ciphertext=ciphertext)


def test_vault_encrypted_values_are_read_decrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = VaultSecretsContext([("default", VaultSecret(b"unit-test-vault-password"))])
    monkeypatch.setattr(VaultSecretsContext, "_current", secrets)
    assert placeholder(vaulted("changeme-in-the-vault")) is True
    assert placeholder(vaulted("{{ not_rendered }}")) is True
    assert placeholder(vaulted("k3P9vQx7mW2rT5nZ")) is False


class AnsibleVaultEncryptedUnicode:
    """Stands in for ansible-core 2.17/2.18's vaulted value: no str, str() decrypts."""

    def __init__(self, plaintext: str) -> None:
        self.plaintext = plaintext

    def __str__(self) -> str:
        return self.plaintext


def test_older_vault_values_are_read_decrypted() -> None:
    assert placeholder(AnsibleVaultEncryptedUnicode("example-key")) is True
    assert placeholder(AnsibleVaultEncryptedUnicode("k3P9vQx7mW2rT5nZ")) is False


def test_ansible_finds_the_test_by_its_name(tmp_path: Path) -> None:
    """Through Ansible's templating: an unsafe (never rendered) value and a vaulted one."""
    password = tmp_path / "vault-pass"
    password.write_text("unit-test-vault-password\n")
    secret = VaultSecret(b"unit-test-vault-password")
    vault = VaultLib([("default", secret)]).encrypt("changeme-in-the-vault", secret).decode()
    (tmp_path / "vars.yml").write_text(
        "values: [changeme, k3P9vQx7mW2rT5nZ, '', !unsafe '{{ x }}']\n"
        "vaulted: !vault |\n" + "".join(f"  {line}\n" for line in vault.split())
    )
    answer = (
        "ANSWER {{ values | select('algotrade.deploy.placeholder') | list | length }}"
        " {{ values | reject('algotrade.deploy.placeholder') | join(',') }}"
        " {{ vaulted is algotrade.deploy.placeholder }}"
    )
    play = {"hosts": "localhost", "gather_facts": False, "vars_files": ["vars.yml"]}
    play["tasks"] = [{"ansible.builtin.debug": {"msg": answer}}]
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(json.dumps([play]))
    result = ansible_playbook(
        playbook, "localhost,", "--connection", "local", "--vault-id", f"default@{password}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ANSWER 3 k3P9vQx7mW2rT5nZ True" in result.stdout, result.stdout


def test_no_role_keeps_its_own_placeholder_rule() -> None:
    """Every secret check goes through the plugin: no copy of its words in roles or playbooks."""
    files = [*REPO.glob("roles/*/*/*.yml"), *REPO.glob("playbooks/*.yml")]
    assert files
    copies = [str(path.relative_to(REPO)) for path in files if "changeme" in path.read_text().lower()]
    assert copies == []
    for checker in ("roles/checks/tasks/settings.yml", "roles/ops/tasks/preflight.yml"):
        assert "algotrade.deploy.placeholder" in (REPO / checker).read_text(), checker
