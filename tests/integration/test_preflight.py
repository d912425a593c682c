"""Preflight of the docker and stack roles refuses what cannot work, naming the variable and the fix.

The host is the controller itself, described by facts of another platform: each
refusal must come before the role reads or changes anything on it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from testlib import REPO, check_described_host

DEBIAN_12 = {
    "distribution": "Debian",
    "distribution_major_version": "12",
    "distribution_version": "12.12",
    "distribution_release": "bookworm",
    "os_family": "Debian",
    "architecture": "x86_64",
}

# The stack role on a described Debian 12 host, with what it needs besides the case's input.
STACK_ON_DEBIAN_12 = {
    "described_role": "algotrade.deploy.stack",
    "described_facts": DEBIAN_12,
    "stack_source_dir": str(REPO / "tests" / "sample-app"),
    "stack_ttyd_source": "image",
    "stack_db_app_password": "a-real-app-password-42",
}


@pytest.mark.parametrize(
    ("facts", "extra_vars", "expected"),
    [
        pytest.param(
            DEBIAN_12,
            {"docker_source": "distro"},
            ["docker_source=distro cannot give Compose >= 2.18.0 on Debian 12", "docker_source: upstream"],
            id="distro-on-debian-12",
        ),
        pytest.param(
            {
                **DEBIAN_12,
                "distribution": "Fedora",
                "os_family": "RedHat",
                "distribution_major_version": "41",
                "distribution_version": "41",
            },
            {},
            ["supports Debian 12, Debian 13, Ubuntu 22.04, Ubuntu 24.04", "Fedora 41"],
            id="unsupported-distribution",
        ),
        pytest.param(
            {**DEBIAN_12, "architecture": "riscv64"},
            {},
            ["x86_64 or aarch64", "riscv64"],
            id="unsupported-architecture",
        ),
        pytest.param(
            DEBIAN_12,
            {"docker_source": "upstream", "docker_upstream_key_fingerprint": "0EBFCD88"},
            ["docker_upstream_key_fingerprint must be the key's full fingerprint", "0EBFCD88"],
            id="short-fingerprint",
        ),
        pytest.param(
            DEBIAN_12,
            {"docker_source": "podman"},
            ["docker_source", "podman", "auto, distro, upstream"],
            id="unknown-source",
        ),
    ],
)
def test_preflight_refuses(
    tmp_path: Path, facts: dict[str, str], extra_vars: dict[str, str], expected: list[str]
) -> None:
    result = check_described_host(tmp_path, {**extra_vars, "described_facts": facts})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    assert "changed=0" in out
    # Refused in preflight, before the host is even read.
    assert "Look up the engine packages" not in out


TUI = {"stack_tui_password": "a-real-tui-password-42"}


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        pytest.param(
            {"stack_db_password": "changeme-0123456789"},
            ["stack_db_password on ", " is a placeholder", "openssl rand", "vault_stack_db_password"],
            id="placeholder-db-password",
        ),
        pytest.param(
            {"stack_db_password": "a-real-db-password-42", "stack_tui_password": "short"},
            ["stack_tui_password on ", " is shorter than 16 characters", "stack_tui_enabled false"],
            id="weak-web-terminal-password",
        ),
        pytest.param(
            {
                "stack_db_password": "a-real-db-password-42",
                "stack_tui_password": "a-real-tui-password-42",
                "stack_api_bind": "192.0.2.10",
            },
            ["stack_api_bind: 192.0.2.10 would publish the API"],
            id="api-beyond-loopback",
        ),
        pytest.param(
            # Wrapped output (openssl rand -base64 64): initdb would take the first line only.
            {"stack_db_password": "a-real-db-password-of\ntwo-lines-wrapped-42\n", **TUI},
            ["stack_db_password: holds a line break inside", "openssl rand -base64 24"],
            id="db-password-of-two-lines",
        ),
        pytest.param(
            {"stack_db_password": "a-real-db-password-42", "stack_db_app_password": "", **TUI},
            ["stack_db_app_password on ", " is empty", "vault_stack_db_app_password"],
            id="app-password-missing",
        ),
        pytest.param(
            {
                "stack_db_password": "the-same-password-42",
                "stack_db_app_password": "the-same-password-42\n",
                **TUI,
            },
            ["stack_db_app_password: must differ from stack_db_password"],
            id="app-password-is-the-admins",
        ),
        pytest.param(
            {"stack_db_password": "a-real-db-password-42", "stack_db_app_user": "algo", **TUI},
            ["stack_db_app_user: must differ from stack_db_user (algo)"],
            id="app-user-is-the-admin",
        ),
        pytest.param(
            {"stack_db_password": "a-real-db-password-42", "stack_db_app_user": "pg_app", **TUI},
            ["stack_db_app_user: must be a PostgreSQL name without quoting, not starting with pg_"],
            id="app-user-reserved",
        ),
    ],
)
def test_stack_preflight_refuses_bad_input_naming_the_variable(
    tmp_path: Path, extra_vars: dict[str, str], expected: list[str]
) -> None:
    result = check_described_host(
        tmp_path,
        {**STACK_ON_DEBIAN_12, **extra_vars},
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    for value in extra_vars.values():
        if "password" in value:
            assert value not in out, "a password reached the output"


def test_stack_preflight_refuses_a_changed_database_password(tmp_path: Path) -> None:
    """A re-deploy cannot change the password of a running database: rotate_db_password does."""
    (tmp_path / "secrets").mkdir()
    deployed, new = "the-deployed-db-password-42", "a-new-vault-db-password-42"
    (tmp_path / "secrets" / "db_password").write_text(deployed)
    result = check_described_host(
        tmp_path,
        {
            **STACK_ON_DEBIAN_12,
            "stack_project_dir": str(tmp_path),
            "stack_db_password": new,
            "stack_tui_password": "a-real-tui-password-42",
        },
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "stack_db_password differs from the password the database on described runs with" in out
    assert "rotate_db_password" in out
    assert new not in out, "the new password reached the output"
    assert deployed not in out, "the deployed password reached the output"
    assert "changed=0" in out


def test_stack_preflight_takes_the_deployed_password_whatever_line_break_it_ends_with(tmp_path: Path) -> None:
    """The deployed password's file ends with a newline (as the role of before wrote the
    vault's value), the vault's value with CR LF: both are the same password for the database
    (its image reads the file without trailing newlines), and the guard lets the deploy on.
    Seen to fail with deployed.yml comparing them as given (refused as a changed password)."""
    (tmp_path / "secrets").mkdir()
    password = "the-deployed-db-password/+=@:%#?&"  # noqa: S105
    (tmp_path / "secrets" / "db_password").write_text(password + "\n")
    result = check_described_host(
        tmp_path,
        {
            **STACK_ON_DEBIAN_12,
            **TUI,
            "stack_project_dir": str(tmp_path),
            "stack_db_password": password + "\r\n",
        },
    )
    out = result.stdout + result.stderr
    guard = out.split("deployed | Refuse a changed database password]", 1)
    assert len(guard) == 2, out[-4000:]
    assert guard[1].lstrip(" *\n").startswith("ok: [described]"), guard[1][:2000]
    assert "differs from the password the database" not in out
    assert password not in out, "the password reached the output"


# A name twice, a null and an integer beyond 64 bits: three refusals of one setting.
BROKEN_BOTS = [
    {"name": "eth-grid"},
    {"name": "btc", "fee": None},
    {"name": "eth-grid", "params": {"size": 2**63}},
]

BROKEN_MIGRATIONS = [
    "scripts/../V9__up.sql",
    "/srv/V1__abs.sql",
    "scripts/notes.txt",
    "scripts//x.sql",
    "scripts/migrations/V001__a.sql",
    "other/V001__a.sql",
]

# (setting, bad value, text its refusal must hold): every rule broken in one run.
BROKEN_RULES = [
    ("stack_project_dir", "/srv", "stack_project_dir: must be a directory of the stack's own"),
    ("stack_project_name", "Algo Trade", "stack_project_name: must be a Compose project name"),
    ("stack_break_lock", "true", "stack_break_lock: names the one stale lock to break: the run id"),
    ("stack_db_name", 'algo"trade', "stack_db_name: must be a PostgreSQL name without quoting"),
    ("stack_db_user", "algo user", "stack_db_user: must be a PostgreSQL name without quoting"),
    ("stack_app_memory_limit", "0", "stack_app_memory_limit: must be a size like 512m or 1g (0 would stop"),
    ("stack_app_pids_limit", -1, "stack_app_pids_limit: must be at least 16 processes"),
    ("stack_app_cpus", "0", "stack_app_cpus: must be a number of CPUs like 0.5 or 2, from 0.01"),
    ("stack_db_memory_limit", "2 GB", "stack_db_memory_limit: must be a size like 2g or 1536m"),
    ("stack_db_pids_limit", 8, "stack_db_pids_limit: must be at least 16 processes (PostgreSQL"),
    ("stack_db_cpus", 0.001, "stack_db_cpus: must be a number of CPUs like 0.5 or 2, from 0.01"),
    ("stack_proxy_memory_limit", "0", "stack_proxy_memory_limit: must be a size like 64m"),
    ("stack_proxy_pids_limit", 0, "stack_proxy_pids_limit: must be at least 16 processes (nginx"),
    ("stack_proxy_cpus", -1, "stack_proxy_cpus: must be a number of CPUs like 0.5 or 2"),
    ("stack_bots", BROKEN_BOTS, "stack_bots: names eth-grid more than once"),
    # The same bots (one run has one stack_bots): values TOML has no form for, by their path.
    ("stack_bots", BROKEN_BOTS, "stack_bots: holds what the app's Config.toml (TOML) cannot hold: "),
    ("stack_bots", BROKEN_BOTS, "stack_bots[1].fee is null, which TOML cannot write: leave the key out"),
    ("stack_bots", BROKEN_BOTS, "stack_bots[2].params.size is 9223372036854775808, beyond TOML's 64-bit"),
    (
        "stack_hyperliquid_private_key",
        "0x1234",
        "stack_hyperliquid_private_key: must be a private key, 0x and 64",
    ),
    (
        "stack_hyperliquid_api_wallet_key",
        "0x" + "g" * 64,
        "stack_hyperliquid_api_wallet_key: must be a private",
    ),
    (
        "stack_hyperliquid_account_address",
        "0x" + "a" * 64,
        "stack_hyperliquid_account_address: must be an add",
    ),
    # One list for the migrations' rules: paths that climb, are absolute or not .sql, and a
    # file name twice (the history's key).
    (
        "stack_db_migrations",
        BROKEN_MIGRATIONS,
        "stack_db_migrations: must list SQL files of the application source, in the order to apply them,"
        " as paths relative to the source's root (letters, digits, dot, dash, underscore, slash; no . or ..;"
        " the file name ending in .sql), e.g. [scripts/setup_timescale.sql,"
        " scripts/migrations/V001__create_signals.sql]; not these:"
        ' "scripts/../V9__up.sql", "/srv/V1__abs.sql", "scripts/notes.txt", "scripts//x.sql".',
    ),
    (
        "stack_db_migrations",
        BROKEN_MIGRATIONS,
        "stack_db_migrations: names a file name more than once (V001__a.sql)",
    ),
    (
        "stack_db_schema_file",
        "/srv/setup.sql",
        "stack_db_schema_file: is deprecated and stands for the setup",
    ),
    # A URL where the registry's host and port go (and the run builds on each host).
    (
        "stack_build_registry",
        "https://registry.example.org:5000/team",
        "stack_build_registry: must be the registry's host name and port alone, without scheme or path",
    ),
    ("stack_build_registry", "https://registry.example.org:5000/team", "set stack_build_mode: once"),
    # A password without its login's user.
    (
        "stack_build_registry_password",
        "a-real-registry-password-42",
        "stack_build_registry_username: is empty while stack_build_registry_password is set",
    ),
    (
        "stack_build_registry_ca_file",
        "/nonexistent/registry-ca.pem",
        "stack_build_registry_ca_file: must name a PEM file on the controller",
    ),
]


# Public host keys as ssh-keyscan prints them (key type, base64 key).
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIACQ2yRr/5xU3eqcNkyZEmuXUmhf+ekpLtvFXcSPQMKv"
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHHdR5pGJWEBh8hY6lr+"
    "l2UvpZn41bqJ9oj032kC1xXZDh7hPH2lzQkeH0Yly3jiw2Kut21E+4PcwXZ9nhV9qVo="
)

REAL_SECRETS = {"stack_db_password": "a-real-db-password-42", "stack_tui_password": "a-real-tui-password-42"}


def stack_check(tmp_path: Path, **settings: object) -> tuple[int, str]:
    """The stack role's check on the described Debian 12 host, with real secrets and the
    case's settings: its exit code and its output, whitespace normalised."""
    result = check_described_host(tmp_path, {**STACK_ON_DEBIAN_12, **REAL_SECRETS, **settings})
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def fatal_results(out: str) -> list[tuple[str, bool]]:
    """Each "fatal" result of the default callback's output: its message, and whether
    ignore_errors took it."""
    fatal, decoder, found = "fatal: [described]: FAILED! => ", json.JSONDecoder(), []
    at = out.find(fatal)
    while at >= 0:
        result, end = decoder.raw_decode(out, at + len(fatal))
        found.append((result["msg"], out[end:].lstrip().startswith("...ignoring")))
        at = out.find(fatal, end)
    return found


def test_stack_preflight_reports_every_broken_setting_in_one_run(tmp_path: Path) -> None:
    """Seen to fail against the settings rules of before (fda69e4): no refusal, the check
    run went on to the host and ended ok (so did each malformed-source case below)."""
    # A weak secret too: its rule is reported with the others, not alone in a run of its own
    # (seen to fail when the secrets' rule stopped the run before the settings' rules).
    rules = [
        *BROKEN_RULES,
        ("stack_tui_password", "short", "stack_tui_password on described is shorter than 16"),
    ]
    rc, out = stack_check(tmp_path, **{name: value for name, value, _refusal in rules})
    assert rc != 0, out
    missing = [text for _name, _value, text in rules if text not in out]
    assert not missing, f"{missing} not in:\n{out[-6000:]}"
    # Then the run stops once, with every refusal in its message (the settings' rules say
    # "<variable>: <fix>", the secrets' "<variable> on <host> is ...").
    # The rules' own tasks fail too, each ignored ("...ignoring" after its result).
    stops = [msg for msg, ignored in fatal_results(out) if not ignored]
    assert len(stops) == 1, out[-3000:]
    (stop,) = stops
    missing = [text for _name, _value, text in rules if text not in stop]
    assert not missing, stop


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(
            {"stack_source": "git", "stack_source_git_repo": "github.com/you/deep-algo"},
            "stack_source_git_repo: must be a Git URL",
            id="git-url-without-scheme",
        ),
        # An SSH checkout trusts only the keys it is given: none, no checkout (no TOFU).
        pytest.param(
            {"stack_source": "git", "stack_source_git_repo": "git@git.example.org:you/deep-algo.git"},
            "stack_source_git_known_hosts: is required for the SSH URL git@git.example.org:you/deep-algo.git:"
            " the git server's host keys as known_hosts lines, the only keys the checkout trusts. Get them"
            " with `ssh-keyscan -p <port> <server>`",
            id="ssh-url-without-known-hosts",
        ),
        pytest.param(
            {
                "stack_source": "git",
                "stack_source_git_repo": "ssh://git@git.example.org:2222/you/deep-algo.git",
                "stack_source_git_known_hosts": "# only a comment\n",
            },
            "stack_source_git_known_hosts: is required for the SSH URL ssh://git@git.example.org:2222/",
            id="ssh-scheme-with-comments-only",
        ),
        pytest.param(
            {
                "stack_source": "git",
                "stack_source_git_repo": "https://git.example.org/you/deep-algo.git",
                "stack_source_git_known_hosts": f"git.example.org {ED25519}\nSHA256:abc git.example.org\n"
                "git.example.org ssh-ed25519\ngit.example.org ssh-ed25519 not*base64",
            },
            "stack_source_git_known_hosts: must hold known_hosts lines, each a host pattern, a key type and"
            " the base64 key (e.g. `git.example.org ssh-ed25519 AAAAC3Nza...`, as ssh-keyscan prints them);"
            ' not these: "SHA256:abc git.example.org", "git.example.org ssh-ed25519",'
            ' "git.example.org ssh-ed25519 not*base64".',
            id="known-hosts-malformed-lines",
        ),
        pytest.param(
            {
                "stack_build_mode": "once",
                "stack_build_registry": "registry.example.org:5000",
                "stack_build_registry_username": "deploy",
            },
            "stack_build_registry_password on described is empty. Put a real value in the inventory's"
            " encrypted vault file",
            id="registry-login-without-password",
        ),
        pytest.param({"stack_project_dir": "/opt/../etc"}, "without . or ..", id="project-dir-climbs"),
        # A space would split the health checks' HTTP request line (the shell quotes it whole).
        pytest.param(
            {"stack_health_path": "/api/bots HTTP/1.1\r\nX: y"},
            "stack_health_path: must be an API path starting with /, e.g. /api/bots, without spaces",
            id="health-path-with-space-and-crlf",
        ),
    ],
)
def test_stack_preflight_refuses_a_malformed_source_or_directory(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    rc, out = stack_check(tmp_path, **settings)
    assert rc != 0, out
    assert expected in out, out[-4000:]


def test_stack_preflight_takes_good_values_of_the_same_settings(tmp_path: Path) -> None:
    """The rules above refuse only what they must: real formats pass, and so do keys with a
    trailing newline (the role strips it) and bots with any key or string TOML can write.
    Seen to fail against the key rules of before, which refused the trailing newline."""
    good = {
        "stack_project_dir": "/opt/algo-trade.2",
        "stack_project_name": "algo_trade-2",
        "stack_db_name": "_algo_trade2",
        "stack_db_user": "algo",
        "stack_app_memory_limit": "1536m",
        "stack_app_pids_limit": 16,
        "stack_app_cpus": 0.25,
        "stack_db_memory_limit": "1536m",
        "stack_db_pids_limit": 16,
        "stack_db_cpus": "1.5",
        "stack_proxy_cpus": 1,
        # Every key and string TOML can write, however hostile for a template.
        "stack_bots": [
            {"name": "eth-grid"},
            {"name": "btc 🚀", "params": {"a key.with dots": 'quote " back\\ \n', "n": 2**63 - 1}},
        ],
        "stack_hyperliquid_private_key": "0x" + "aB3" * 21 + "c",
        # With the newline encrypt_string --stdin-name keeps: the role strips it (secret_text).
        "stack_hyperliquid_api_wallet_key": "0x" + "0" * 64 + "\n",
        "stack_hyperliquid_account_address": "0x" + "Fe" * 20 + "\r\n",
        "stack_source": "git",
        "stack_source_git_repo": "git@git.example.org:you/deep-algo.git",
        "stack_db_migrations": [
            "scripts/setup_timescale.sql",
            "scripts/migrations/V001__create_signals.sql",
            "db/V2.1__x-y.sql",
        ],
        "stack_build_mode": "once",
        "stack_build_registry": "registry.example.org:5000",
        "stack_build_registry_username": "deploy",
        "stack_build_registry_password": "a-real-registry-password-42\n",
        "stack_build_registry_ca_file": str(REPO / "README.md"),
    }
    # Over SSH with the server's keys (every form ssh-keyscan and ssh-keygen write); the
    # others need none.
    known_hosts = (
        f"# ssh-keyscan git.example.org\ngit.example.org,10.0.0.7 {ED25519}\n\n"
        f"[git.example.org]:2222 {ECDSA}\n"
        f"|1|c2FsdA==|aGFzaA== {ED25519} comment\n@cert-authority *.example.org {ED25519}\n"
    )
    for repo, hosts in (
        ("git@git.example.org:you/deep-algo.git", known_hosts),
        ("ssh://git@git.example.org:2222/you/deep-algo.git", known_hosts),
        ("https://git.example.org/you/deep-algo.git", ""),
        ("file:///srv/x", ""),
    ):
        settings = {**good, "stack_source_git_repo": repo, "stack_source_git_known_hosts": hosts}
        _rc, out = stack_check(tmp_path, **settings)
        for name in good:
            assert f"{name}: must" not in out, out[-4000:]
        # No secret refused (that rule is a loop), and every settings' rule is checked in one
        # task, which passed.
        assert "failed: [described] (item=" not in out, out[-4000:]
        assert re.search(r"settings \| Check the settings\] \**\s*ok: \[described\]", out), out[-4000:]


def test_stack_preflight_refuses_what_the_deployed_stack_fixes(tmp_path: Path) -> None:
    """A database name or user other than the running database's, and a project name or
    directory other than the deployed stack's (the stack role's local fact), are refused
    before the host changes; the same values pass. Seen to fail before these checks: the
    runs went on (rc 0 in check mode); and, for the project, with the fact taken out of
    the check (`__deployed: {}`)."""
    (tmp_path / "compose.yaml").write_text(
        "services:\n  db:\n    environment:\n      POSTGRES_DB: algo_trade\n      POSTGRES_USER: algo\n"
    )
    # The stack role's local fact, in a file of the test's (the role's path is this machine's).
    fact = tmp_path / "algotrade_deploy.fact"
    fact.write_text(json.dumps({"project_name": "algo-trade", "project_dir": str(tmp_path)}))
    deployed = {"stack_project_dir": str(tmp_path), "__stack_local_fact_file": str(fact)}
    rc, out = stack_check(tmp_path, **deployed, stack_db_name="algo_other", stack_db_user="trader")
    assert rc != 0, out
    assert (
        "stack_db_name=algo_other, but the database of the stack on described was made as algo_trade" in out
    )
    assert "stack_db_user=trader, but the database of the stack on described was made as algo" in out
    assert "Keep stack_db_name: algo_trade," in out

    rc, out = stack_check(tmp_path, **deployed, stack_project_name="algo-two")
    assert rc != 0, out
    assert f"described runs the stack algo-trade in {tmp_path}; stack_project_name=algo-two" in out

    _rc, out = stack_check(tmp_path, **deployed)
    assert "was made as" not in out
    assert "would start a second one" not in out
    assert "ok: [described] => (item=stack_db_user)" in out
