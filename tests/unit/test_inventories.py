"""The example inventories: encrypted vaults per environment, every vault_* reference defined."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from testlib import REPO, collection_plugin

CLIENT = REPO / "scripts" / "vault-pass-client.sh"
EXAMPLES = ["prod", "staging"]


@pytest.mark.parametrize("env", [*EXAMPLES, "demo"])
def test_vault_encrypted_with_the_environments_vault_id(env: str) -> None:
    header = (REPO / "inventories" / env / "group_vars" / "all" / "vault.yml").read_text().splitlines()[0]
    assert header == f"$ANSIBLE_VAULT;1.2;AES256;{env}"


@pytest.mark.parametrize("env", EXAMPLES)
def test_every_vault_reference_is_in_the_vault_and_holds_an_example(env: str) -> None:
    root = REPO / "inventories" / env
    password = (root / "example-vault-password.txt").read_bytes().strip()
    vault = VaultLib([(env, VaultSecret(password))]).decrypt((root / "group_vars/all/vault.yml").read_bytes())
    values = yaml.safe_load(vault)
    used = set(re.findall(r"\b(vault_\w+)", (root / "group_vars/all/vars.yml").read_text()))
    assert used
    assert used <= set(values), f"referenced but not in the vault: {used - set(values)}"
    # Example values only, each one refused by the preflight's placeholder rule.
    placeholder = collection_plugin("test", "placeholder").placeholder
    assert all(str(v).startswith("example") and placeholder(v) for v in values.values()), values


@pytest.mark.parametrize("env", EXAMPLES)
def test_root_link_points_at_the_inventory(env: str) -> None:
    assert (REPO / env).resolve() == (REPO / "inventories" / env).resolve()


@pytest.mark.parametrize("env", EXAMPLES)
def test_host_vars_configure_bots(env: str) -> None:
    files = list((REPO / "inventories" / env / "host_vars").glob("*/vars.yml"))
    assert files
    for path in files:
        bots = yaml.safe_load(path.read_text())["stack_bots"]
        assert bots, path
        # The stack's settings rule: every bot has a name (the API's key for it).
        assert all(bot.get("name") for bot in bots), path


def client(vault_id: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLIENT), "--vault-id", vault_id],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(home), **env},
    )


def test_client_prefers_the_operators_password_file(tmp_path: Path) -> None:
    vault_dir = tmp_path / ".config" / "algotrade" / "vault"
    vault_dir.mkdir(parents=True)
    (vault_dir / "prod").write_text("the-real-one\n")
    (vault_dir / "prod").chmod(0o600)
    assert client("prod", tmp_path).stdout == "the-real-one\n"
    (vault_dir / "prod").chmod(0o644)
    refused = client("prod", tmp_path)
    assert refused.returncode != 0
    assert "chmod 600" in refused.stderr


def test_client_falls_back_to_the_example_and_names_the_fix(tmp_path: Path) -> None:
    example = (REPO / "inventories" / "prod" / "example-vault-password.txt").read_text()
    assert client("prod", tmp_path).stdout == example
    missing = client("nosuch", tmp_path)
    assert missing.returncode != 0
    assert f"{tmp_path}/.config/algotrade/vault/nosuch" in missing.stderr
    assert client("../prod", tmp_path).returncode != 0
