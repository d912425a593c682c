"""The stack role's build templates, rendered the way the role renders them.

Covers the paths the test bed cannot run (Docker's official images, ttyd's release
download, the cargo-chef strategy) and lints the rendered entrypoint.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_postgres_url import HOSTILE, parsed
from test_to_toml import HOSTILE_BOTS
from testlib import REPO
from testlib import render_template as render

ROLE = REPO / "roles" / "stack"


def test_dockerfile_cache_mounts_and_checked_ttyd_release(tmp_path: Path) -> None:
    dockerfile = render("Dockerfile.j2", tmp_path, stack_build_strategy="cache-mounts")
    assert "# syntax=" not in dockerfile.lower()
    assert "FROM rust:1.91.1-trixie AS builder" in dockerfile
    assert "--mount=type=cache,id=algo-trade-target,target=/src/target" in dockerfile
    assert "SQLX_OFFLINE=true CARGO_ALGOTRADE_MACRO_INPUTS=" in dockerfile
    assert "cargo-locked cargo build --release --locked --bin algo-trade" in dockerfile
    assert "FROM debian:trixie-slim AS runtime" in dockerfile
    assert (
        "ADD --checksum=sha256:8a217c968aba172e0dbf3f34447218dc015bc4d5e59bf51db2f2cd12b7be4f55 "
        "https://mirror.example/ttyd/1.7.7/ttyd.x86_64 /usr/local/bin/ttyd"
    ) in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert "STOPSIGNAL SIGTERM" in dockerfile
    # The daemon's check, as the compose file's (which overrides it per service).
    assert (
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \\\n"
        '  CMD ["/usr/local/bin/entrypoint.sh", "healthcheck-api"]'
    ) in dockerfile
    assert 'CMD ["run-app", "run"]' in dockerfile
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"' in dockerfile


def test_dockerfile_cargo_chef_strategy_by_default(tmp_path: Path) -> None:
    dockerfile = render("Dockerfile.j2", tmp_path)
    assert "FROM rust:1.91.1-trixie AS chef" in dockerfile
    assert "cargo install --locked cargo-chef@0.1.78" in dockerfile
    assert "FROM chef AS planner" in dockerfile
    assert "cargo chef prepare --recipe-path recipe.json" in dockerfile
    assert "cargo-locked cargo chef cook --release --locked --recipe-path recipe.json" in dockerfile
    # The chef stage copies nothing: it builds alone, on the classic builder too (test_builder_tools).
    chef_stage = dockerfile.split(" AS chef\n")[1].split("FROM chef AS planner")[0]
    assert "COPY" not in chef_stage
    assert "RUSTC_WRAPPER=sccache" in dockerfile
    assert "COPY --from=builder /out/algo-trade /usr/local/bin/algo-trade" in dockerfile


@pytest.mark.parametrize("strategy", ["cache-mounts", "cargo-chef"])
def test_dockerfile_for_a_source_without_lock_or_query_cache(tmp_path: Path, strategy: str) -> None:
    """No Cargo.lock in the source: the lock the build host resolved goes in after every
    copy of the source, and the build stays --locked to it; no .sqlx/: the online build
    step alone mounts the build database's URL as a BuildKit secret, never a build argument
    or an ENV, and keeps sqlx's query data under the schema's key; the kept-data step
    compiles offline from that data with no secret mount. A build argument picks one."""
    dockerfile = render(
        "Dockerfile.j2",
        tmp_path,
        stack_build_strategy=strategy,
        __image_source_has_lock=False,
        __image_source_has_query_cache=False,
    )
    copies = dockerfile.count("COPY src/ ./")
    assert copies >= 1
    assert dockerfile.count("COPY src/ ./\nCOPY Cargo.lock.generated ./Cargo.lock\n") == copies
    online = dockerfile.split(" AS build-online\n")[1].split("\nFROM ")[0]
    kept = dockerfile.split(" AS build-kept\n")[1].split("\nFROM ")[0]
    assert dockerfile.count("--mount=type=secret,id=database_url,required=true") == 1
    assert "--mount=type=secret,id=database_url,required=true" in online
    assert 'DATABASE_URL="$(cat /run/secrets/database_url)"' in online
    assert 'SQLX_OFFLINE_DIR="/sqlx-queries/$ALGOTRADE_QUERY_KEY"' in online
    assert "secret" not in kept
    assert 'cp -R "/sqlx-queries/$ALGOTRADE_QUERY_KEY" .sqlx' in kept
    assert "SQLX_OFFLINE=true CARGO_ALGOTRADE_MACRO_INPUTS=" in kept
    assert "cargo-locked cargo build --release --locked" in kept
    assert dockerfile.count("--mount=type=cache,id=algo-trade-sqlx-queries,target=/sqlx-queries") == 2
    assert "FROM build-${ALGOTRADE_QUERY_DATA} AS builder\n" in dockerfile
    args = [line for line in dockerfile.splitlines() if line.startswith("ARG ")]
    assert args == ["ARG ALGOTRADE_QUERY_DATA=online", "ARG ALGOTRADE_QUERY_KEY", "ARG ALGOTRADE_QUERY_KEY"]
    assert "ENV DATABASE_URL" not in dockerfile


def macro_inputs(dockerfile: str, stage: str, source: Path, query_key: str) -> str:
    """CARGO_ALGOTRADE_MACRO_INPUTS as the build step of `stage` sets it in `source`."""
    step = dockerfile.split(stage, 1)[1]
    assignment = step[step.index("CARGO_ALGOTRADE_MACRO_INPUTS=") : step.index(" cargo-locked cargo build")]
    script = assignment.replace("\\\n", " ").strip() + '\nprintf %s "$CARGO_ALGOTRADE_MACRO_INPUTS"'
    env = {"PATH": os.environ["PATH"], "ALGOTRADE_QUERY_KEY": query_key}
    run = subprocess.run(
        ["sh", "-c", script], cwd=source, env=env, capture_output=True, text=True, check=True
    )
    return run.stdout


@pytest.mark.parametrize("has_query_cache", [True, False])
def test_sccache_keys_the_libraries_by_what_procedural_macros_read(
    tmp_path: Path, has_query_cache: bool
) -> None:
    """sccache keys a crate by its Rust sources, not by the files sqlx's macros read: the
    build step puts their digest in a CARGO_ variable, which sccache hashes. A one-line
    change of Rust source keeps it (the libraries stay cached); a changed migration,
    query data or schema changes it. Without the source's .sqlx/, the data asked of the
    build database and the data kept give one key (the schema's)."""
    dockerfile = render("Dockerfile.j2", tmp_path, __image_source_has_query_cache=has_query_cache)
    stage = "AS builder\n" if has_query_cache else "AS build-kept\n"
    source = tmp_path / "src"
    for name, text in [
        ("crates/cli/src/main.rs", "fn main() {}"),
        ("crates/data/migrations/0001_init.sql", "CREATE TABLE t (id int);"),
        (".sqlx/query-1.json", "{}"),
        ("target/release/junk", "1"),
    ]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    key = macro_inputs(dockerfile, stage, source, "k1")
    (source / "crates/cli/src/main.rs").write_text('fn main() { println!("2"); }')
    (source / "target/release/junk").write_text("2")
    assert macro_inputs(dockerfile, stage, source, "k1") == key, "Rust sources and target/ are sccache's own"
    (source / ".sqlx/query-1.json").write_text('{"changed": true}')
    assert (macro_inputs(dockerfile, stage, source, "k1") != key) == has_query_cache
    (source / "crates/data/migrations/0001_init.sql").write_text("CREATE TABLE t (id bigint);")
    changed = macro_inputs(dockerfile, stage, source, "k1")
    assert changed != key
    assert (macro_inputs(dockerfile, stage, source, "k2") != changed) == (not has_query_cache)


@pytest.mark.parametrize("strategy", ["cache-mounts", "cargo-chef"])
def test_dockerfile_installs_the_builder_packages_only_where_missing(tmp_path: Path, strategy: str) -> None:
    dockerfile = render(
        "Dockerfile.j2",
        tmp_path,
        stack_build_strategy=strategy,
        stack_builder_packages=["cmake", "clang; rm -rf /"],
    )
    assert "pkgs='cmake clang; rm -rf /'; \\" in dockerfile, "one shell word, quoted"
    assert "if ! dpkg-query -W $pkgs" in dockerfile
    none = render("Dockerfile.j2", tmp_path, stack_build_strategy=strategy, stack_builder_packages=[])
    assert "pkgs=" not in none.split("AS runtime")[0]


@pytest.mark.parametrize(
    ("source", "line"), [("file", "COPY --chmod=0755 ttyd /usr/local/bin/ttyd"), ("image", None)]
)
def test_dockerfile_other_ttyd_sources(tmp_path: Path, source: str, line: str | None) -> None:
    dockerfile = render("Dockerfile.j2", tmp_path, stack_ttyd_source=source)
    assert "ADD --checksum" not in dockerfile
    if line:
        assert line in dockerfile
    else:
        assert "/usr/local/bin/ttyd" not in dockerfile


def test_rendered_entrypoint_is_shellcheck_clean(tmp_path: Path) -> None:
    entrypoint = render("entrypoint.sh.j2", tmp_path)
    result = subprocess.run(
        ["shellcheck", "-s", "bash", "-"], input=entrypoint, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.fixture(scope="module")
def proxy_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A certificate, key and login files as the proxy container sees them."""
    secrets = tmp_path_factory.mktemp("secrets")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-subj", "/CN=unit", "-days", "1", "-keyout", str(secrets / "tls_private_key"),
         "-out", str(secrets / "tls_certificate")],
        check=True, capture_output=True,
    )  # fmt: skip
    for name in ("htpasswd_live-bot-tui", "htpasswd_backtest-manager", "api_htpasswd"):
        (secrets / name).write_text("user:$6$salt$hash\n")
    for path in secrets.iterdir():
        path.chmod(0o444)
    secrets.chmod(0o755)  # mounted whole here: nginx's user must reach the files
    return secrets


@pytest.mark.parametrize(
    ("tui", "api_remote"), [(True, False), (True, True), (False, True)], ids=["tui", "tui+api", "api"]
)
def test_proxy_config_is_accepted_by_nginx(
    tmp_path: Path, proxy_files: Path, tui: bool, api_remote: bool
) -> None:
    conf = render(
        "nginx.conf.j2",
        tmp_path,
        stack_tui_enabled=tui,
        stack_api_remote=api_remote,
        stack_allowed_origins=["https://trading.example.org:7681"],
        __release_edge_subnet="172.30.0.0/16",
    )
    assert "deny all;" in conf
    assert "allow 172.30.0.0/16;" in conf
    assert ("htpasswd_live-bot-tui" in conf) is tui
    assert ("htpasswd_backtest-manager" in conf) is tui
    assert ("api_htpasswd" in conf) is api_remote
    mounts = [
        "-v",
        f"{tmp_path / 'nginx.conf'}:/etc/nginx/nginx.conf:ro",
        "-v",
        f"{proxy_files}:/run/secrets:ro",
    ]
    result = subprocess.run(
        # As the proxy runs: as nginx's UID, no capability.
        ["docker", "run", "--rm", "--network", "none", "--user", "101:101", "--cap-drop", "ALL", *mounts,
         "local/nginx:trixie", "nginx", "-t"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_every_published_server_limits_each_client_before_the_login(tmp_path: Path) -> None:
    """limit_req in each server that checks a login (nginx runs it before auth_basic), at
    the set rate and burst; not in the container's own health server."""
    conf = render(
        "nginx.conf.j2", tmp_path, stack_api_remote=True, stack_proxy_rate_limit="7", stack_proxy_rate_burst=3
    )
    assert "limit_req_zone $binary_remote_addr zone=per_client:1m rate=7r/s;" in conf
    servers = conf.split("\n    server {")[1:]
    guarded = [s for s in servers if "auth_basic " in s]
    assert len(guarded) == 3  # two terminals and the API
    for server in guarded:
        assert "limit_req zone=per_client burst=3 nodelay;" in server
    assert [s for s in servers if "limit_req " in s] == guarded


MOZILLA_INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


@pytest.mark.parametrize(
    ("settings", "protocols", "ciphers", "prefer"),
    [
        ({}, "TLSv1.2 TLSv1.3", MOZILLA_INTERMEDIATE_CIPHERS, "off"),
        (
            {
                "stack_tls_protocols": ["TLSv1.3"],
                "stack_tls_ciphers": ["ECDHE-RSA-AES256-GCM-SHA384"],
                "stack_tls_prefer_server_ciphers": True,
            },
            "TLSv1.3",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "on",
        ),
        # As given on the command line (-e name=value): one string.
        (
            {"stack_tls_protocols": "TLSv1.2", "stack_tls_prefer_server_ciphers": "true"},
            "TLSv1.2",
            MOZILLA_INTERMEDIATE_CIPHERS,
            "on",
        ),
    ],
    ids=["mozilla-intermediate", "own", "one-string"],
)
def test_proxy_tls_settings(
    tmp_path: Path, settings: dict[str, object], protocols: str, ciphers: str, prefer: str
) -> None:
    lines = render("nginx.conf.j2", tmp_path, **settings).splitlines()
    assert f"    ssl_protocols {protocols};" in lines
    assert f"    ssl_ciphers {ciphers};" in lines
    assert f"    ssl_prefer_server_ciphers {prefer};" in lines
    assert "    ssl_session_timeout 1d;" in lines


# Upstream's services (the defaults, the signal collector too when enabled), the proxy, and
# one an inventory adds; each with a digest of its own.
SERVICES = ("app", "live-bot-tui", "backtest-manager", "scheduled-backtest", "backtest-daemon",
            "signal-collector", "proxy", "collector")  # fmt: skip
DIGESTS = {name: f"{i:016x}" for i, name in enumerate(SERVICES)}


def compose_text(tmp_path: Path, **overrides: object) -> str:
    settings: dict[str, object] = {
        "__release_app_image": "algo-trade/app:0123456789abcdef",
        # What render.yml and host_state.yml fix before the role renders the compose file.
        "__release_input_digests": {name: DIGESTS[name] for name in SERVICES},
        "__release_input_dirs": {name: f"/opt/algo-trade/inputs/{name}-{DIGESTS[name]}" for name in SERVICES},
        "__release_services": list(SERVICES),
        "__release_files": "{{ __stack_release_files }}",
        "__release_migrations": [
            {
                "file": "setup_timescale.sql",
                "version": "",
                "sha256": "a" * 64,
                "setup": True,
                "tables": ["t"],
            },
            {"file": "V001__signals.sql", "version": "001", "sha256": "b" * 64},
        ],
        "stack_db_password": "x" * 24,
        "stack_tui_password": "y" * 24,
        "stack_api_password": "z" * 24,
        "stack_tui_bind": "192.0.2.10",
        **overrides,
    }
    return render("compose.yaml.j2", tmp_path, **settings)


def compose(tmp_path: Path, **overrides: object) -> dict[str, Any]:
    rendered = yaml.safe_load(compose_text(tmp_path, **overrides))
    assert isinstance(rendered, dict)
    return rendered


def test_the_web_terminals_run_as_their_own_user_with_their_sockets_on_its_tmpfs(tmp_path: Path) -> None:
    """Each terminal service runs as stack_tui_uid, every other app service as 10001; the
    sockets' volume is a tmpfs that user owns (mode 0711: the proxy reaches a socket by its
    name), named after it. Seen to fail with one user for every app service."""
    rendered = compose(tmp_path, stack_tui_uid=10077)
    app_services = [name for name in SERVICES if name in rendered["services"] and name != "proxy"]
    users = {name: rendered["services"][name]["user"] for name in app_services}
    terminals = {"live-bot-tui", "backtest-manager"}
    assert users == {name: "10077:10077" if name in terminals else "10001:10001" for name in app_services}
    volume = rendered["volumes"]["tui-sockets-10077"]
    assert volume["driver_opts"]["type"] == "tmpfs"
    assert "uid=10077,gid=10077,mode=0711" in volume["driver_opts"]["o"]
    for name in [*terminals, "proxy"]:
        assert "tui-sockets-10077:/run/ttyd" in [str(v) for v in rendered["services"][name]["volumes"]], name


def test_compose_lists_the_migrations_and_the_database_runs_no_init_script(tmp_path: Path) -> None:
    """The release's id is a digest of its compose file: the schema migrations are listed
    there by name and checksum (a changed file, a new release), and the database mounts no
    init script (collections of before mounted the setup script, which ran on an empty
    volume only). Seen to fail against the template of before (no list, the mount)."""
    text = compose_text(tmp_path)
    assert "#   setup_timescale.sql sha256:" + "a" * 64 in text.splitlines()
    assert "#   V001__signals.sql sha256:" + "b" * 64 in text.splitlines()
    assert text.index("setup_timescale.sql sha256") < text.index("V001__signals.sql sha256")
    db = yaml.safe_load(text)["services"]["db"]
    assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]
    assert "docker-entrypoint-initdb.d" not in text
    changed = compose_text(
        tmp_path, __release_migrations=[{"file": "V001__signals.sql", "version": "001", "sha256": "c" * 64}]
    )
    assert "#   V001__signals.sql sha256:" + "c" * 64 in changed.splitlines()
    assert "setup_timescale.sql" not in changed
    assert "schema migrations" not in compose_text(tmp_path, __release_migrations=[])


@pytest.mark.parametrize(
    ("tui", "api_remote", "proxy_ports", "app_ports"),
    [
        (True, False, ["192.0.2.10:7681:7681", "192.0.2.10:7682:7682"], ["127.0.0.1:8080:8080"]),
        (True, True, ["192.0.2.10:7681:7681", "192.0.2.10:7682:7682", "192.0.2.10:8080:8443"], None),
        (False, True, ["192.0.2.10:8080:8443"], None),
        (False, False, None, ["127.0.0.1:8080:8080"]),
    ],
    ids=["tui", "tui+remote-api", "remote-api-only", "nothing-remote"],
)
def test_compose_publishes_only_through_the_proxy(
    tmp_path: Path, tui: bool, api_remote: bool, proxy_ports: list[str] | None, app_ports: list[str] | None
) -> None:
    """stack_tui_enabled: false leaves no terminal service, no terminal port and no ttyd socket volume.
    The proxy depends on the API it serves (its resolver caches the API's address), on no
    terminal: Compose would recreate it with each (seen: depends_on listed them)."""
    api_bind = "192.0.2.10" if api_remote else "127.0.0.1"
    services = compose(tmp_path, stack_tui_enabled=tui, stack_api_remote=api_remote, stack_api_bind=api_bind)[
        "services"
    ]
    assert services.get("proxy", {}).get("ports") == proxy_ports
    assert services["app"].get("ports") == app_ports
    assert ("live-bot-tui" in services and "backtest-manager" in services) is tui
    assert ("tui-sockets-10002:/run/ttyd" in services.get("proxy", {}).get("volumes", [])) is tui
    assert all("tui-socket" not in " ".join(s.get("volumes", [])) for n, s in services.items() if n != "proxy"
               and not n.endswith(("-tui", "-manager")))  # fmt: skip
    assert "ports" not in services["db"]
    if "proxy" in services:
        depends_on = {"app": {"condition": "service_healthy"}} if api_remote else None
        assert services["proxy"].get("depends_on") == depends_on


def test_compose_names_each_services_files_by_their_digest(tmp_path: Path) -> None:
    """A release's compose file reads each service's files from a directory named after
    their content (a service whose files did not change keeps its container), under a
    secret name of the service's own, and the database's password from its one place,
    shared by every release."""
    rendered = compose(tmp_path, stack_hyperliquid_private_key="0x" + "a" * 64)
    files = {name: entry["file"] for name, entry in rendered["secrets"].items()}
    app, proxy = (
        f"/opt/algo-trade/inputs/app-{DIGESTS['app']}",
        f"/opt/algo-trade/inputs/proxy-{DIGESTS['proxy']}",
    )
    assert files["db_password"] == "/opt/algo-trade/secrets/db_password"  # noqa: S105
    assert files["app-app_config"] == f"{app}/app_config"
    assert files["app-env_HYPERLIQUID_PRIVATE_KEY"] == f"{app}/env_HYPERLIQUID_PRIVATE_KEY"
    assert files["proxy-htpasswd_live-bot-tui"] == f"{proxy}/htpasswd_live-bot-tui"
    services = rendered["services"]
    for name in ("app", "live-bot-tui", "scheduled-backtest", "proxy"):
        assert services[name]["labels"]["org.algotrade.inputs"] == DIGESTS[name]
    assert {"source": "app-app_config", "target": "app_config"} in services["app"]["secrets"]
    assert f"{proxy}/nginx.conf:/etc/nginx/nginx.conf:ro" in services["proxy"]["volumes"]
    assert "labels" not in services["db"], "the database is recreated only when its own settings change"


def test_the_app_config_carries_a_hostile_database_password_whole(tmp_path: Path) -> None:
    """Config.toml's database URL, built with the filter algotrade.deploy.postgres_url as
    Ansible loads it from the collection. Seen to fail with Jinja's urlencode (the parser
    split the URL at the password's first "/")."""
    config = render(
        "Config.toml.j2",
        tmp_path,
        stack_db_password="admin-password-0123456789",  # noqa: S106
        stack_db_app_password=HOSTILE[-1],
        stack_db_app_user="algo user",
        stack_db_name="algo/trade",
        stack_tui_password="y" * 24,
        stack_api_password="z" * 24,
    )
    url = tomllib.loads(config)["database"]["url"]
    assert parsed(url) == ("algo user", HOSTILE[-1], "algo/trade", "db", 5432)


def test_the_app_logs_in_as_its_own_role_not_the_admin(tmp_path: Path) -> None:
    """The app's URL names stack_db_app_user with its password: neither the admin's name
    (stack_db_user, the database's superuser) nor its password is in the app's config.
    Seen to fail with the URL of before (stack_db_user, stack_db_password)."""
    config = render(
        "Config.toml.j2",
        tmp_path,
        stack_db_password="admin-password-0123456789",  # noqa: S106
        stack_db_app_password="app-password-0123456789",  # noqa: S106
        stack_tui_password="y" * 24,
        stack_api_password="z" * 24,
    )
    assert parsed(tomllib.loads(config)["database"]["url"])[:2] == ("algo_app", "app-password-0123456789")
    assert "admin-password" not in config


def test_the_app_config_carries_hostile_bots_whole(tmp_path: Path) -> None:
    """stack_bots with nested tables, keys with spaces, dots and quotes, emoji, multi-line
    strings, quotes and backslashes, as Ansible hands them to the template: Config.toml
    parses back to the same bots beside the app's own sections. Seen to fail against the
    template of before (`key = value | to_json` lines): tomllib refused the document at the
    first emoji, which to_json writes as a surrogate pair of escapes ("Escaped character is
    not a Unicode scalar value"); keys with spaces or dots, null and nested tables were next."""
    bots = [
        {key: value for key, value in bot.items() if key not in {"start", "at", "daily"}}
        for bot in HOSTILE_BOTS
        if bot["name"] != "numbers and mixtures"
    ] + [{"name": "numbers", "big": 2**63 - 1, "mixed": [1, "two", 3.5, True, {"five": 5}, [6, ["seven"]]]}]
    config = tomllib.loads(
        render(
            "Config.toml.j2",
            tmp_path,
            stack_bots=bots,
            stack_db_password="x" * 24,
            stack_tui_password="y" * 24,
            stack_api_password="z" * 24,
        )
    )
    assert config["bots"] == bots
    assert config["server"] == {"host": "0.0.0.0", "port": 8080}  # noqa: S104
    assert config["database"]["max_connections"] == 10
    assert config["database"]["url"].startswith("postgresql://algo_app:")
    assert set(config["hyperliquid"]) == {"api_url", "ws_url"}


def test_the_app_config_without_bots_has_no_bots_key(tmp_path: Path) -> None:
    """As the template of before wrote it: the app's own bots.db holds the bots then."""
    config = tomllib.loads(
        render(
            "Config.toml.j2",
            tmp_path,
            stack_bots=[],
            stack_db_password="x" * 24,
            stack_tui_password="y" * 24,
            stack_api_password="z" * 24,
        )
    )
    assert list(config) == ["server", "database", "hyperliquid"]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\n\n", ""], ids=["lf", "crlf", "two-lf", "none"])
def test_the_app_config_url_has_the_password_without_its_newline(tmp_path: Path, ending: str) -> None:
    """A password holding each of / + = @ : % # ? & and the trailing newline that
    `ansible-vault encrypt_string --stdin-name` stores: the URL, parsed as RFC 3986 userinfo
    (urllib's split, then percent-decoding, as the url crate and sqlx do), gives the password
    without the newline, as the PostgreSQL image reads its password file. Seen to fail with
    __stack_database_url given the password itself (the URL ended in %0A)."""
    password = "pw/+=@:%#?&x-0123456789"  # noqa: S105
    config = render(
        "Config.toml.j2",
        tmp_path,
        stack_db_app_password=password + ending,
        stack_tui_password="y" * 24,
        stack_api_password="z" * 24,
    )
    url = tomllib.loads(config)["database"]["url"]
    assert parsed(url) == ("algo_app", password, "algo_trade", "db", 5432)


HOSTILE_HEALTH_PATH = "/api/bots?q='$(touch {canary})'&r=\"`touch {canary}`\";touch {canary}%2F%s"


def test_the_entrypoint_health_check_sends_a_hostile_health_path_as_it_is(tmp_path: Path) -> None:
    """stack_health_path (a setting: the settings rule asks only for a leading /) reaches the
    container's health check as one shell word: the rendered entrypoint, run with
    `healthcheck` against a local HTTP server, asks for exactly that path, and nothing in it
    runs. Seen to fail with the template of before ('{{ stack_health_path }}' in single
    quotes): the quote in the path ended the word, `$(touch ...)` ran and left the request."""
    canary = tmp_path / "ran"
    path = HOSTILE_HEALTH_PATH.format(canary=canary)
    requests: list[bytes] = []

    def answer(server: socket.socket) -> None:
        """One HTTP request: keep its request line, answer 200."""
        connection, _address = server.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received and (chunk := connection.recv(4096)):
                received += chunk
            requests.append(received.split(b"\r\n", 1)[0])
            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n")

    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=answer, args=(server,), daemon=True)
        thread.start()
        port = server.getsockname()[1]
        script = tmp_path / "entrypoint.sh"
        script.write_text(
            render("entrypoint.sh.j2", tmp_path, stack_health_path=path, __stack_api_container_port=port)
        )
        result = subprocess.run(
            ["bash", str(script), "healthcheck-api"], capture_output=True, text=True, check=False, timeout=30
        )
        thread.join(timeout=10)
    assert requests == [f"GET {path} HTTP/1.0".encode()], result.stdout + result.stderr
    assert not canary.exists(), "a command in the health path ran"
    # The server answered 200; the check goes on to the database, which is not here.
    assert "database not reachable" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("self_signed", [True, False])
def test_every_secret_a_service_names_is_defined_and_the_proxy_gets_its_certificate(
    tmp_path: Path, self_signed: bool
) -> None:
    """Compose mounts a secret only under a name the file defines; the proxy reads its
    certificate and key at /run/secrets/tls_* whether the role made them on the host
    (self-signed, not among the release's files) or the inventory gave them. Seen to fail:
    the proxy of a self-signed host had no certificate and every cold deploy failed."""
    tls = {} if self_signed else {"stack_tls_certificate": "CERT", "stack_tls_private_key": "KEY"}
    rendered = compose(tmp_path, **tls)
    defined = set(rendered["secrets"])
    for name, service in rendered["services"].items():
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in defined, (name, source)
    targets = [s["target"] for s in rendered["services"]["proxy"]["secrets"]]
    assert {
        "tls_certificate",
        "tls_private_key",
        "htpasswd_live-bot-tui",
        "htpasswd_backtest-manager",
    } <= set(targets)
    assert len(targets) == len(set(targets))


@pytest.mark.parametrize("engine_has_it", [True, False])
def test_health_checks_run_every_second_until_first_healthy_where_the_engine_can(
    tmp_path: Path, engine_has_it: bool
) -> None:
    """Engines from 25 take start_interval (Compose refuses it on older ones): every health
    check then runs each second until its container is first healthy, not every 5-10 s."""
    services = compose(tmp_path, __release_start_interval=engine_has_it)["services"]
    checked = {name: s["healthcheck"] for name, s in services.items() if "healthcheck" in s}
    # Every service has a check of its own: the image's (the API's) would fail the others,
    # and `compose up --wait` refuses a disabled one.
    assert set(checked) == set(services)
    assert checked["scheduled-backtest"]["test"][1:] == [
        "/usr/local/bin/entrypoint.sh",
        "healthcheck-process",
    ]
    for name, check in checked.items():
        assert ("start_interval" in check) is engine_has_it, name
        if engine_has_it:
            assert check["start_interval"] == "1s", name


def test_compose_limits_every_container_from_the_settings(tmp_path: Path) -> None:
    """CIS 5.10-5.12, 5.28: memory, processes and CPUs of every container, from the settings.
    Seen to fail against the template of before (the database unlimited, no CPU limit at all)."""
    services = compose(tmp_path)["services"]
    limits = {name: (s.get("mem_limit"), s.get("pids_limit"), s.get("cpus")) for name, s in services.items()}
    assert limits == {
        **dict.fromkeys(set(services) - {"db", "proxy"}, ("1g", 256, 1.0)),
        "db": ("2g", 512, 1.0),
        "proxy": ("64m", 64, 0.5),
    }
    settings = {
        "stack_app_memory_limit": "768m",
        "stack_app_pids_limit": 100,
        "stack_app_cpus": "1.5",
        "stack_db_memory_limit": "3g",
        "stack_db_pids_limit": 300,
        "stack_db_cpus": 2,
        "stack_proxy_memory_limit": "32m",
        "stack_proxy_pids_limit": 32,
        "stack_proxy_cpus": "0.25",
    }
    services = compose(tmp_path, **settings)["services"]
    limits = {name: (s.get("mem_limit"), s.get("pids_limit"), s.get("cpus")) for name, s in services.items()}
    assert limits == {
        **dict.fromkeys(set(services) - {"db", "proxy"}, ("768m", 100, 1.5)),
        "db": ("3g", 300, 2.0),
        "proxy": ("32m", 32, 0.25),
    }


def test_compose_database_has_a_read_only_root_with_tmpfs_for_what_it_writes(tmp_path: Path) -> None:
    """Outside its volume the database writes only its socket and lock file and the temporary
    files of its entrypoint and timescaledb-tune: a read-only root, tmpfs for those."""
    db = compose(tmp_path)["services"]["db"]
    assert db["read_only"] is True
    assert db["tmpfs"] == ["/var/run/postgresql:size=1m", "/tmp:size=64m,mode=1777"]  # noqa: S108
    assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a PID namespace")
def test_the_process_health_check_asks_the_child_of_pid_1(tmp_path: Path) -> None:
    """healthcheck-process, run beside a service as the engine runs it (not a child of the
    container's PID 1): healthy while PID 1's child runs, unhealthy once it is stopped."""
    script = tmp_path / "entrypoint.sh"
    script.write_text(render("entrypoint.sh.j2", tmp_path))
    # A PID namespace whose PID 1 (as tini) runs one child (as the service).
    unshare = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", "sleep 60 & wait"]
    )
    try:
        for _attempt in range(50):
            children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text().split()
            init = children[0] if children else ""
            service = Path(f"/proc/{init}/task/{init}/children").read_text().split() if init else []
            if service:
                break
            time.sleep(0.1)
        assert service, "no service process in the namespace"

        def check() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["nsenter", "-t", init, "-p", "-m", "bash", str(script), "healthcheck-process"],
                capture_output=True, text=True, check=False, timeout=30,
            )  # fmt: skip

        assert check().returncode == 0, check().stdout + check().stderr
        os.kill(int(service[0]), signal.SIGSTOP)
        # The signal is delivered asynchronously: check once the kernel shows the stop
        # (the full unit run once checked before it, and the check saw a running child).
        until_stopped = time.monotonic() + 10
        while Path(f"/proc/{service[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < until_stopped, "the service was not stopped"
            time.sleep(0.05)
        stopped = check()
        assert stopped.returncode == 1
        assert "is in state T" in stopped.stdout
    finally:
        unshare.kill()
        unshare.wait()
