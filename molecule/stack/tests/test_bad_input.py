"""Bad settings are refused in preflight, with the variable and the fix named, and
nothing on the deployed host changes: before and after the refusals, the project
directory (paths, modes, owners, checksums), the host's top-level directories and those
of /opt, /srv and /var/lib, the containers (IDs, images, start times, restarts), images,
volumes and networks are the same.

One run refuses every case: each case is a host of its own, an alias of stack-a (the
same container, the case's settings as its host variables), so the role's checks run
against the deployed host once per case, side by side, with the role alone (the rollout
playbooks add their own checks, tested in tests/ and fleet). One run per case took
7-10 s each, about 5 minutes for the 36 cases of then (pytest's durations, idle machine); the
one run, 72.5 s. A case refused too late shows up twice: in
its own row (no refusal, or changed > 0) and in the snapshot's diff.

To see it fail: skip preflight's settings check (`when: false`) and run the scenario's
verify; the cases of that check find no refusal, and the snapshot diff names what the
runs changed. Seen to fail so in the one run (c68f547, converged scenario): with the
health path's rule made `ok: true`, 2 failed, 35 passed in 182 s: the case's row (no
refusal) and the snapshot (the case's release went as far as its gate and was put back:
new app and proxy container IDs, a new image and proxy inputs, the certificate renewed
for the alias's name). Seen to fail so before (one run per case): with the health path's rule of
tasks/settings.yml made `ok: true`, `-k health-path-relative` failed against the
converged scenario (the run went on to a release that failed its gate and was put back:
changed=8, no "stack_health_path: must be an API path" in the output); the rule back, it passed.
"""

from __future__ import annotations

import difflib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from stackenv import INVENTORY, PROJECT, STACK_HOSTS, assert_no_secret
from testlib import REPO, failures, run_json

testinfra_hosts = STACK_HOSTS

PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n"

# (case id, settings over the scenario's, text the refusal must contain)
CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "db-password-missing",
        {"stack_db_password": ""},
        "stack_db_password on bad-db-password-missing is empty",
    ),
    (
        "db-password-placeholder",
        {"stack_db_password": "changeme-changeme-42"},
        "stack_db_password on bad-db-password-placeholder is a placeholder",
    ),
    (
        "db-password-short",
        {"stack_db_password": "short-pw"},
        "stack_db_password on bad-db-password-short is shorter than 16 characters",
    ),
    (
        "tui-password-missing",
        {"stack_tui_password": ""},
        "stack_tui_password on bad-tui-password-missing is empty",
    ),
    (
        "tui-password-placeholder",
        {"stack_tui_password": "password-password"},
        "stack_tui_password on bad-tui-password-placeholder is a placeholder",
    ),
    (
        "api-password-missing",
        {"stack_api_password": ""},
        "stack_api_password on bad-api-password-missing is empty",
    ),
    (
        "api-port-out-of-range",
        {"stack_api_port": 70000},
        "stack_api_port: must be a port between 1 and 65535",
    ),
    ("tui-port-zero", {"stack_tui_port": 0}, "stack_tui_port: must be a port between 1 and 65535"),
    (
        "ports-clash",
        {"stack_tui_port": 8080},
        "stack_services.live-bot-tui.terminal.port and stack_api_port publish the same port 8080",
    ),
    (
        "source-without-the-bin",
        {"stack_source_dir": str(REPO / "molecule" / "resources" / "fork-without-bin")},
        "builds no binary named algo-trade (it builds: engine)",
    ),
    (
        "builder-package-not-a-name",
        {"stack_builder_packages": ["cmake", "clang; rm -rf /"]},
        "stack_builder_packages: must list Debian package names (lowercase letters, digits, + . -),"
        ' e.g. [cmake, clang]; not these: "clang; rm -rf /".',
    ),
    (
        "service-unknown-key",
        {"stack_services_overrides": {"scheduled-backtest": {"comand": ["scheduled-backtest"]}}},
        "stack_services.scheduled-backtest has unknown keys comand",
    ),
    (
        "service-secret-not-given",
        {"stack_services_overrides": {"reporter": {"command": ["report"], "secrets": ["REPORT_TOKEN"]}}},
        "stack_services.reporter.secrets names REPORT_TOKEN, which is no secret the role has",
    ),
    (
        "services-trading-the-same-bots",
        {
            "stack_services_overrides": {
                "backtest-daemon": {"environment": {"BOT_DATABASE_URL": "sqlite:///data/bots.db"}}
            }
        },
        "app and backtest-daemon would both trade the bots of sqlite:///data/bots.db",
    ),
    (
        "terminal-login-weak",
        {"stack_services_overrides": {"backtest-manager": {"terminal": {"password": "short-pw"}}}},
        "stack_services_overrides.backtest-manager.terminal.password on bad-terminal-login-weak is shorter",
    ),
    (
        "unknown-build-strategy",
        {"stack_build_strategy": "docker-magic"},
        "stack_build_strategy must be one of",
    ),
    ("unknown-source", {"stack_source": "svn"}, "stack_source must be one of"),
    (
        "source-dir-missing",
        {"stack_source_dir": "/nonexistent/app"},
        "stack_source_dir=/nonexistent/app has no",
    ),
    (
        "tls-cert-without-key",
        {"stack_tls_certificate": PEM_CERT},
        "stack_tls_private_key: give stack_tls_cert",
    ),
    (
        "tls-not-pem",
        {"stack_tls_certificate": "a certificate", "stack_tls_private_key": "a key"},
        "stack_tls_certificate: must be a PEM certificate",
    ),
    (
        "tls-protocol-deprecated",
        {"stack_tls_protocols": ["TLSv1.1", "TLSv1.2"]},
        "stack_tls_protocols: must list TLSv1.2, TLSv1.3 or both, e.g. [TLSv1.2, TLSv1.3] (the Mozilla"
        " intermediate profile); not these: TLSv1.1. SSLv3 is broken (RFC 7568) and TLSv1 and TLSv1.1"
        " are deprecated (RFC 8996)",
    ),
    (
        "tls-protocols-empty",
        {"stack_tls_protocols": []},
        "stack_tls_protocols: must list TLSv1.2, TLSv1.3 or both",
    ),
    (
        "tls-cipher-injects-nginx-syntax",
        {"stack_tls_ciphers": ["ECDHE-RSA-AES128-GCM-SHA256; ssl_protocols TLSv1"]},
        "stack_tls_ciphers: must list cipher suites for TLS 1.2 by their OpenSSL names",
    ),
    (
        "tls-ciphers-empty",
        {"stack_tls_ciphers": []},
        "or be left out for the Mozilla intermediate profile. The TLS 1.3 suites (TLS_...) are set by"
        " OpenSSL, not here. Not these: none given.",
    ),
    (
        "proxy-rate-zero",
        {"stack_proxy_rate_limit": 0},
        "stack_proxy_rate_limit: must be a whole number of requests per second per client address",
    ),
    ("network-malformed", {"stack_allowed_networks": ["10.0.0.0/33"]}, "not these: 10.0.0.0/33"),
    ("networks-empty", {"stack_allowed_networks": []}, "stack_allowed_networks: must list networks"),
    ("origin-not-https", {"stack_allowed_origins": ["http://x.example"]}, "stack_allowed_origins: must list"),
    ("tui-bind-not-an-address", {"stack_tui_bind": "everywhere"}, "stack_tui_bind: must be an IP address"),
    (
        "api-public-without-proxy",
        {"stack_api_remote": False, "stack_api_bind": "0.0.0.0"},  # noqa: S104
        "stack_api_bind: 0.0.0.0 would publish the API",
    ),
    ("bot-without-name", {"stack_bots": [{"symbol": "ETH"}]}, "stack_bots: every bot needs a name"),
    (
        "bots-not-a-list-of-tables",
        {"stack_bots": ["eth-grid"]},
        "Elements value for option 'stack_bots' is of type str and we were unable to convert to dict",
    ),
    ("config-template-missing", {"stack_config_template": "/nonexistent/Config.toml.j2"}, "is not a file on"),
    ("health-path-relative", {"stack_health_path": "api/bots"}, "stack_health_path: must be an API path"),
    ("release-keep-one", {"stack_release_keep": 1}, "stack_release_keep: must be at least 2"),
    (
        "image-keep-renamed",
        {"stack_image_keep": 3},
        "stack_image_keep: is now stack_release_keep: a release keeps its image",
    ),
    ("memory-limit-malformed", {"stack_app_memory_limit": "lots"}, "stack_app_memory_limit: must be a size"),
    (
        "ws-url-insecure",
        {"stack_hyperliquid_ws_url": "ws://plain.example"},
        "stack_hyperliquid_ws_url: must be",
    ),
    (
        "project-dir-relative",
        {"stack_project_dir": "opt/algo-trade"},
        "stack_project_dir: must be an absolute path of letters, digits",
    ),
    (
        "project-dir-with-a-colon",
        {"stack_project_dir": "/opt/algo:trade"},
        "(it goes into Compose's volume syntax, where a colon or space would split it)",
    ),
    ("login-name-with-colon", {"stack_tui_user": "tra:der"}, "stack_tui_user: must be a login name"),
    # A trailing newline would end the htpasswd line early ($ in a regex lets it through).
    ("login-name-with-newline", {"stack_tui_user": "trader\n"}, "stack_tui_user: must be a login name"),
    # What a new user tried against a deployed host: each was deployed, or took the
    # trader down, or left junk behind, before these rules.
    (
        "project-name-with-a-space",
        {"stack_project_name": "algo trade"},
        "stack_project_name: must be a Compose",
    ),
    ("project-name-climbs", {"stack_project_name": "../x"}, "stack_project_name: must be a Compose"),
    ("project-dir-root", {"stack_project_dir": "/"}, "stack_project_dir: must be an absolute path"),
    (
        "project-dir-system",
        {"stack_project_dir": "/srv"},
        "stack_project_dir: must be a directory of the stack's",
    ),
    ("db-name-with-a-quote", {"stack_db_name": "algo'trade"}, "stack_db_name: must be a PostgreSQL name"),
    ("db-user-with-a-space", {"stack_db_user": "algo user"}, "stack_db_user: must be a PostgreSQL name"),
    (
        "memory-limit-zero",
        {"stack_app_memory_limit": "0"},
        "stack_app_memory_limit: must be a size like 512m",
    ),
    ("pids-limit-negative", {"stack_app_pids_limit": -1}, "stack_app_pids_limit: must be at least 16"),
    (
        "bots-with-one-name",
        {"stack_bots": [{"name": "eth"}, {"name": "eth", "symbol": "BTC"}]},
        "stack_bots: names eth more than once",
    ),
    (
        "bots-toml-null",
        {"stack_bots": [{"name": "eth-grid", "params": {"fee": None}}]},
        "stack_bots[0].params.fee is null, which TOML cannot write: leave the key out",
    ),
    (
        "db-password-of-two-lines",
        {"stack_db_password": "molecule-db-pw-of\ntwo-lines-wrapped-42"},
        "stack_db_password: holds a line break inside",
    ),
    (
        "health-path-with-a-space",
        {"stack_health_path": "/api/bots HTTP/1.1"},
        "stack_health_path: must be an API path starting with /, e.g. /api/bots, without spaces",
    ),
    (
        "private-key-short",
        {"stack_hyperliquid_private_key": "0x1234"},
        "must be a private key, 0x and 64 hex",
    ),
    (
        "wallet-key-not-hex",
        {"stack_hyperliquid_api_wallet_key": "0x" + "g" * 64},
        "stack_hyperliquid_api_wallet_key: must be a private key, 0x and 64 hex",
    ),
    (
        "account-address-a-key",
        {"stack_hyperliquid_account_address": "0x" + "ab" * 32},
        "stack_hyperliquid_account_address: must be an address, 0x and 40 hex",
    ),
    (
        "proxy-as-root",
        {"stack_proxy_uid": 0},
        "stack_proxy_uid: must be the UID of the proxy image's nginx user",
    ),
    (
        "git-url-malformed",
        {"stack_source": "git", "stack_source_git_repo": "not a url"},
        "stack_source_git_repo: must be a Git URL",
    ),
    (
        "ttyd-release-without-url",
        {"stack_ttyd_source": "release"},
        "Or set stack_ttyd_source: image when the runtime image carries ttyd.",
    ),
]


def scenario_networks() -> list[str]:
    """The scenario's allowed networks, resolved here (the facts they come from are not gathered)."""

    def inspect(*args: str) -> list[dict[str, Any]]:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout
        return json.loads(out)  # type: ignore[no-any-return]

    attacker = inspect("inspect", "stack-attacker")[0]["NetworkSettings"]["Networks"]["molecule-stack"]
    gateway = inspect("network", "inspect", "molecule-stack")[0]["IPAM"]["Config"][0]["Gateway"]
    return [f"{attacker['IPAddress']}/32", f"{gateway}/32"]


# Everything a refused run must leave as it was, in one shell command.
SNAPSHOT = (
    f"cd {PROJECT} && find . -printf '%M %U:%G %p\\n' | sort"
    " && find . -type f -print0 | sort -z | xargs -0 sha256sum"
    # The top-level directories and those where a wrong path would make one (/opt/algo:trade).
    " && ls -A / /opt /srv /var/lib"
    " && docker inspect -f '{{.Name}} {{.Id}} {{.Image}} {{.State.StartedAt}} {{.RestartCount}}'"
    " $(docker ps -aq) | sort"
    " && docker image ls -a --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sort"
    " && docker volume ls -q | sort && docker network ls -q | sort"
)


def snapshot() -> str:
    """Through the engine, not testinfra: one process instead of an Ansible run."""
    return subprocess.run(
        ["docker", "exec", "stack-a", "sh", "-c", SNAPSHOT], capture_output=True, text=True, check=True
    ).stdout


def alias(case: str) -> str:
    return f"bad-{case}"


class Refusals:
    """The one run over every case: its output, its JSON document, the host before and after."""

    def __init__(self, workdir: Path) -> None:
        networks = scenario_networks()
        hosts = {
            alias(name): {
                "ansible_host": "stack-a",
                "ansible_connection": "community.docker.docker",
                "stack_allowed_networks": networks,
                **settings,
            }
            for name, settings, _message in CASES
        }
        cases = workdir / "cases.yml"
        cases.write_text(json.dumps({"stack": {"hosts": hosts}}))  # JSON is YAML
        self.before = snapshot()
        self.result, self.document = run_json(
            REPO / "molecule" / "stack" / "role_only.yml", INVENTORY, "-i", str(cases), "--limit", "bad-*"
        )
        self.after = snapshot()
        self.output = self.result.stdout + self.result.stderr

    def refusal(self, case: str) -> str:
        """What the tasks that failed for the case said, whitespace folded."""
        return " ".join(" ".join(failures(self.document, alias(case))).split())


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Refusals:
    return Refusals(tmp_path_factory.mktemp("bad-input"))


# ports-clash sets stack_tui_port, the default of the live-bot terminal's port: the refusal
# names that port (stack_services.live-bot-tui.terminal.port) and stack_api_port.
ALSO_NAMED = {"ports-clash": ["stack_api_port"]}


def names(settings: dict[str, Any]) -> set[str]:
    """What a refusal of these settings may call them: the variables, and stack_services for
    stack_services_overrides (the refusal names the merged service, stack_services.NAME)."""
    return {"stack_services" if key == "stack_services_overrides" else key for key in settings}


@pytest.mark.parametrize(("name", "settings", "message"), CASES, ids=[c[0] for c in CASES])
def test_refused_in_preflight(refusals: Refusals, name: str, settings: dict[str, Any], message: str) -> None:
    stats = refusals.document["stats"][alias(name)]
    refusal = refusals.refusal(name)
    assert stats["failures"] == 1, (stats, refusals.output[-3000:])
    assert message in refusal, refusal[-3000:]
    # Whatever the row's text, the refusal names a variable the case sets.
    assert any(n in refusal for n in names(settings) | set(ALSO_NAMED.get(name, []))), refusal[-3000:]
    assert stats["changed"] == 0, stats


def test_the_refusals_change_nothing_and_show_no_secret(refusals: Refusals) -> None:
    assert refusals.result.returncode != 0
    assert refusals.after == refusals.before, (
        f"the refused runs changed the host:\n{diff(refusals.before, refusals.after)}"
    )
    assert_no_secret(refusals.output)


def diff(before: str, after: str) -> str:
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0))
