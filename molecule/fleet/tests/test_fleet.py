"""A fleet of three rolled out by the site playbook: build once, plan, canary, stop on a failure, lock.

The tests run in file order and each leaves every host healthy: v1 everywhere (converge),
check mode, each deploy tag in check mode, a faulty v2 stopped at the canary, the fixed
v2 everywhere, the lock, then which hosts enter the batches: only those that change, none
when a host fails its plan, and no later batch after a host of a batch of two fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import testinfra
import testinfra.host
import testinfra.utils.ansible_runner
from testlib import (
    REPO,
    ansible_playbook,
    expected_hosts,
    failures,
    recap,
    run_json,
    run_ok,
    start_ansible_playbook,
    streamed_events,
    until,
)

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
HOSTS = expected_hosts(INVENTORY, "all", ["fleet-a", "fleet-b", "fleet-c"])  # fleet-a: canary, builds
SITE = REPO / "molecule" / "fleet" / "converge.yml"
STACK = REPO / "playbooks" / "stack.yml"
APP = "algo-trade-app-1"
SCHEDULED = "algo-trade-scheduled-backtest-1"
LOCK = "/opt/algo-trade/deploy.lock"
ROLLOUT = "Roll out the trading stack"  # the play of stack.yml that deploys, in batches
PLAN = "Plan the rollout on every host"  # the play before it, on every host of the run
VARS = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_variables("fleet-a")
SECRETS = [
    VARS["stack_db_password"],
    VARS["stack_db_app_password"],
    VARS["stack_tui_password"],
    VARS["stack_build_registry_password"],
]
# The test bed's registry (prepare.yml). The converge ships archives through the controller;
# the fixed release and the no-op after it go through the registry.
REGISTRY = "fleet-registry:5000"
THROUGH_REGISTRY = {"stack_build_registry": REGISTRY}


@pytest.fixture(scope="module")
def hosts() -> dict[str, testinfra.host.Host]:
    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}") for name in HOSTS}


def app(host: testinfra.host.Host) -> dict[str, str]:
    """The running app container: its ID, image reference, image ID and health."""
    fmt = "{{.Id}} {{.Config.Image}} {{.Image}} {{.State.Health.Status}}"
    cid, ref, image_id, health = run_ok(host, f"docker inspect -f '{fmt}' {APP}").split()
    return {"id": cid, "ref": ref, "image_id": image_id, "health": health}


def host_state(host: testinfra.host.Host, container: str) -> str:
    return run_ok(host, f"docker inspect -f '{{{{.State.Status}}}}' {container}").strip()


def fleet(hosts: dict[str, testinfra.host.Host]) -> dict[str, dict[str, str]]:
    return {name: app(host) for name, host in hosts.items()}


def proxy(host: testinfra.host.Host) -> str:
    """The proxy's container ID."""
    return run_ok(host, "docker inspect -f '{{.Id}}' algo-trade-proxy-1").strip()


def api_version(host: testinfra.host.Host) -> str:
    """The version the API answers with (header X-Algo-Trade-Version)."""
    out = run_ok(
        host,
        "curl -s -o /dev/null -w '%{http_code} %header{x-algo-trade-version}' http://127.0.0.1:8080/api/bots",
    )
    return out.strip()


def wait_healthy(host: testinfra.host.Host, timeout: int = 120) -> None:
    try:
        until(lambda: app(host)["health"] == "healthy", timeout, "the app healthy")
    except AssertionError as error:
        logs = run_ok(host, "docker compose --project-directory /opt/algo-trade logs --tail 30")
        raise AssertionError(logs) from error


def keep(name: str, output: str) -> None:
    """Keeps a run's output in tests/artifacts/ (ignored by git) for a person to read."""
    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / f"fleet-{name}.log").write_text(output)


def summary(output: str) -> dict[str, str]:
    """Host -> its line of the ROLLOUT SUMMARY printed by the callback plugin."""
    assert "ROLLOUT SUMMARY" in output, output[-3000:]
    text = output[output.rindex("ROLLOUT SUMMARY") :]
    return {
        line.split()[0]: line for line in text.splitlines() if line.split()[:1] and line.split()[0] in HOSTS
    }


def no_locks_left(hosts: dict[str, testinfra.host.Host]) -> None:
    for name, host in hosts.items():
        assert not host.file(LOCK).exists, f"{name} still holds {host.file(LOCK).content_string}"


def with_host_vars(tmp_path: Path, host_vars: dict[str, str]) -> Path:
    """A copy of the scenario's inventory with extra host variables (YAML text per host)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(Path(INVENTORY).parent, inventory, symlinks=True)
    (inventory / "host_vars").mkdir(exist_ok=True)
    for name, text in host_vars.items():
        (inventory / "host_vars" / f"{name}.yml").write_text(text)
    return inventory / Path(INVENTORY).name


def batches(document: dict[str, Any], play: str) -> list[list[str]]:
    """The hosts that ran a play, one list per batch (a play with no hosts: one empty list)."""
    return [
        sorted({host for task in entry["tasks"] for host in task["hosts"]})
        for entry in document["plays"]
        if entry["play"]["name"] == play
    ]


def plays_from(document: dict[str, Any], play: str) -> list[tuple[str, list[str]]]:
    """The plays of a run from the named one on, each with the hosts that ran it.

    Whole plays by name: a renamed play shows up here under its new name and fails the
    comparison, where a search for text that must be absent would still pass.
    """
    names = [entry["play"]["name"] for entry in document["plays"]]
    assert play in names, names
    return [
        (entry["play"]["name"], sorted({host for task in entry["tasks"] for host in task["hosts"]}))
        for entry in document["plays"][names.index(play) :]
    ]


def test_every_host_runs_the_image_built_once(hosts: dict[str, testinfra.host.Host]) -> None:
    state = fleet(hosts)
    assert {s["health"] for s in state.values()} == {"healthy"}
    assert len({s["image_id"] for s in state.values()}) == 1, state
    assert re.fullmatch(r"algo-trade/app:[0-9a-f]{16}", state["fleet-a"]["ref"])
    assert all(api_version(h) == "200 sample-1" for h in hosts.values())
    # Only the build host has the Rust builder (and the runtime base it builds on).
    for name, host in hosts.items():
        for image in ("local/rust-builder:trixie", "local/app-runtime:trixie"):
            present = host.run(f"docker image inspect {image}").rc == 0
            assert present == (name == "fleet-a"), f"{image} on {name}: {present}"
    no_locks_left(hosts)


def test_check_mode_changes_nothing(hosts: dict[str, testinfra.host.Host]) -> None:
    before = fleet(hosts)
    result = ansible_playbook(SITE, INVENTORY, "--check", "--diff")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    for name in HOSTS:
        assert recap(result, name)["changed"] == 0, name
        assert "no change" in summary(out)[name]
    for secret in SECRETS:
        assert secret not in out
    assert fleet(hosts) == before
    no_locks_left(hosts)


# The deploy's tags of docs/operations.md ("Tags"; tests/unit/test_tags.py checks what each lists).
DEPLOY_TAGS = [
    "docker",
    "docker_install",
    "docker_configure",
    "docker_service",
    "docker_users",
    "stack",
    "stack_build",
]


@pytest.mark.parametrize("tag", DEPLOY_TAGS)
def test_each_tag_runs_alone_in_check_mode(hosts: dict[str, testinfra.host.Host], tag: str) -> None:
    """A tag's step runs with what it needs (a step without its preflight failed on its variables).
    On the build host alone (a limit must hold it): the other hosts run the same tasks."""
    before = fleet(hosts)
    result = ansible_playbook(SITE, INVENTORY, "--check", "--tags", tag, "--limit", "fleet-a")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert recap(result, "fleet-a")["changed"] == 0
    assert fleet(hosts) == before
    no_locks_left(hosts)


def test_a_tag_of_the_docker_role_runs_for_real(hosts: dict[str, testinfra.host.Host]) -> None:
    """--tags docker_configure on the deployed fleet: its checks and daemon.json, nothing changed."""
    before = fleet(hosts)
    result = ansible_playbook(SITE, INVENTORY, "--tags", "docker_configure")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert {name: recap(result, name)["changed"] for name in HOSTS} == dict.fromkeys(HOSTS, 0)
    assert "TASK [algotrade.deploy.docker : configure | Write daemon.json]" in result.stdout
    assert fleet(hosts) == before


def test_the_installed_collection_runs_the_site_playbook(
    hosts: dict[str, testinfra.host.Host], tmp_path: Path
) -> None:
    """As users install it (README, "Deploy"): the built tarball installed into a clean path and
    `algotrade.deploy.site` run from there, outside the clone, with a vaulted setting read
    through the installed vault client and the run summary of the installed callback."""
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)], check=True
    )
    (tarball,) = tmp_path.glob("algotrade-deploy-*.tar.gz")
    installed = tmp_path / "collections"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    subprocess.run(
        # --force: without it ansible-galaxy installs nothing when a collection of the same
        # version is on the default collections path (seen: "Nothing to do", an empty path).
        [
            "ansible-galaxy",
            "collection",
            "install",
            "--no-deps",
            "--force",
            "-p",
            str(installed),
            str(tarball),
        ],
        check=True,
        env=clean,
        cwd=tmp_path,
    )
    collection = installed / "ansible_collections" / "algotrade" / "deploy"
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir(mode=0o700)
    (vault_dir / "prod").write_text("installed-collection-vault-pw-5e2d\n")
    (vault_dir / "prod").chmod(0o600)
    env = {
        **clean,
        "ANSIBLE_COLLECTIONS_PATH": str(installed),
        "ANSIBLE_CALLBACKS_ENABLED": "algotrade.deploy.rollout_summary",
        "ANSIBLE_VAULT_IDENTITY_LIST": f"prod@{collection}/scripts/vault-pass-client.sh",
        "ALGOTRADE_VAULT_PASSWORD_DIR": str(vault_dir),
        "ANSIBLE_NOCOLOR": "1",
    }
    vaulted = subprocess.run(
        [
            "ansible-vault",
            "encrypt_string",
            "--encrypt-vault-id",
            "prod",
            "--stdin-name",
            "stack_db_password",
        ],
        input=VARS["stack_db_password"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    (tmp_path / "vaulted.yml").write_text(vaulted)
    before = fleet(hosts)
    result = subprocess.run(
        # On the build host (a limit must hold it): the run, not the fleet, is what is tested here.
        [
            "ansible-playbook",
            "-i",
            INVENTORY,
            "algotrade.deploy.site",
            "-e",
            "@vaulted.yml",
            "--limit",
            "fleet-a",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert recap(result, "fleet-a")["changed"] == 0
    assert "unchanged" in summary(out)["fleet-a"], summary(out)
    for secret in SECRETS:
        assert secret not in out
    assert fleet(hosts) == before


@pytest.fixture(scope="module")
def release_2() -> None:
    """The next release of the app: a one-line change in the controller's copy."""
    main = Path(VARS["sample_app_dir"]) / "crates" / "cli" / "src" / "main.rs"
    main.write_text(
        re.sub(r'pub const VERSION: &str = ".*";', 'pub const VERSION: &str = "sample-2";', main.read_text())
    )


def test_failed_canary_stops_the_rollout(
    hosts: dict[str, testinfra.host.Host], release_2: None, tmp_path: Path
) -> None:
    """The canary fails its health gate: put back, the run fails, no other host is touched."""
    before = fleet(hosts)
    # The same inventory with a fault on the canary: a health path the API does not serve.
    # A gate made to fail waits its timeout out: 45 s, not the default 180.
    inventory = with_host_vars(
        tmp_path, {"fleet-a": "stack_health_path: /api/no-such-route\nstack_health_timeout: 45\n"}
    )
    result = ansible_playbook(SITE, inventory)
    out = result.stdout + result.stderr
    keep("failed-canary", out)
    assert result.returncode != 0, out[-5000:]
    after = fleet(hosts)
    # The canary ran the new release, failed the gate and is back on the old image, healthy.
    assert "failed on fleet-a" in out
    assert f"({before['fleet-a']['ref']}), running and healthy." in out
    assert after["fleet-a"]["ref"] == before["fleet-a"]["ref"]
    wait_healthy(hosts["fleet-a"])
    assert api_version(hosts["fleet-a"]) == "200 sample-1"
    # The hosts of later batches are untouched: same containers, no new image shipped.
    new_tag = re.search(r"The release [0-9a-f]{16} \((algo-trade/app:[0-9a-f]{16})\) failed", out)
    assert new_tag, out[-5000:]
    for name in ("fleet-b", "fleet-c"):
        assert after[name] == before[name], name
        assert hosts[name].run(f"docker image inspect {new_tag.group(1)}").rc != 0
    lines = summary(out)
    assert "FAILED" in lines["fleet-a"]
    assert "put back on" in lines["fleet-a"]
    assert "not reached" in lines["fleet-b"]
    assert "not reached" in lines["fleet-c"]
    assert "Rollout STOPPED" in out
    assert recap(result, "fleet-a")["failed"] == 1
    for secret in SECRETS:
        assert secret not in out
    no_locks_left(hosts)


def test_fixed_release_reaches_every_host_through_the_registry(
    hosts: dict[str, testinfra.host.Host], release_2: None
) -> None:
    """stack_build_registry: the canary pushes the release to the test bed's registry (TLS
    from the scenario's CA, a login), the two others pull it; no archive goes through the
    controller and no login or registry tag stays on a host."""
    before = fleet(hosts)
    proxies = {name: proxy(host) for name, host in hosts.items()}
    with ExitStack() as streams:
        events = {
            name: streams.enter_context(
                streamed_events(host, "--filter type=image", "{{.Action}} {{.Actor.ID}}")
            )
            for name, host in hosts.items()
        }
        result = ansible_playbook(SITE, INVENTORY, extra_vars=THROUGH_REGISTRY)
    out = result.stdout + result.stderr
    keep("fixed-release", out)
    assert result.returncode == 0, out[-5000:]
    after = fleet(hosts)
    assert len({s["image_id"] for s in after.values()}) == 1, after
    assert after["fleet-a"]["ref"] != before["fleet-a"]["ref"]
    lines = summary(out)
    for name, host in hosts.items():
        assert api_version(host) == "200 sample-2", name
        assert " changed " in lines[name], lines[name]
        assert "ok, healthy" in lines[name], lines[name]
        # A release of the image alone: the proxy, whose settings are as they were, runs on.
        assert proxy(host) == proxies[name], name
    for name in ("fleet-b", "fleet-c"):
        assert hosts[name].run("docker image inspect local/rust-builder:trixie").rc != 0
    # Pushed by the canary, pulled by the others, each under the registry's name.
    tag = after["fleet-a"]["ref"].split(":")[1]
    remote = f"{REGISTRY}/{after['fleet-a']['ref']}"
    assert f"push {remote}" in events["fleet-a"], events["fleet-a"]
    for name in ("fleet-b", "fleet-c"):
        assert f"pull {remote}" in events[name], (name, events[name])
    stored = f"/var/lib/docker-registry/docker/registry/v2/repositories/algo-trade/app/_manifests/tags/{tag}"
    subprocess.run(["docker", "exec", "fleet-registry", "test", "-d", stored], check=True)
    assert not list(Path(VARS["stack_build_archive_dir"]).glob(f"*{tag}*"))
    # What the push and pull leave: the image under its local name alone, no login.
    password = VARS["stack_build_registry_password"]
    for name, host in hosts.items():
        assert run_ok(host, f"docker image ls -q {REGISTRY}/algo-trade/app") == "", name
        assert host.run("ls -d /tmp/algotrade-registry.*").rc != 0, name
        leak = host.run(f"grep -rlF -- '{password}' /root /tmp /var/tmp /etc /opt/algo-trade")
        assert leak.rc == 1, (name, leak.stdout, leak.stderr)
        assert host.file(f"/etc/docker/certs.d/{REGISTRY}/ca.crt").exists, name
    for secret in SECRETS:
        assert secret not in out
    no_locks_left(hosts)


def build_cache_records(host: testinfra.host.Host) -> list[dict[str, str]]:
    """BuildKit's cache records on a host (`docker buildx du --verbose`), field by field."""
    out = host.check_output("docker buildx du --verbose")
    records = []
    for block in re.split(r"\n\s*\n", out):
        fields = dict(
            (key.strip(), value.strip())
            for key, sep, value in (line.partition(":") for line in block.splitlines())
            if sep
        )
        if "ID" in fields:
            records.append(fields)
    return records


def test_the_canary_keeps_its_compiler_cache_between_builds(
    hosts: dict[str, testinfra.host.Host], release_2: None
) -> None:
    """stack_build_strategy=cargo-chef on the build host: after its two builds (sample-1,
    then sample-2), BuildKit keeps one sccache cache mount, used by both builds' cooking
    and compiling; the hosts that only run the image built nothing."""
    records = build_cache_records(hosts["fleet-a"])
    sccache = [
        r for r in records if r.get("Type") == "exec.cachemount" and "/sccache" in r.get("Description", "")
    ]
    assert len(sccache) == 1, records
    assert int(sccache[0].get("Usage count", "0")) >= 2, sccache
    for name in ("fleet-b", "fleet-c"):
        assert not [r for r in build_cache_records(hosts[name]) if r.get("Type") == "exec.cachemount"], name


def test_second_run_is_refused_while_the_first_holds_the_lock(hosts: dict[str, testinfra.host.Host]) -> None:
    """A run that holds fleet-a's lock (taken by the stack role's lock tasks, held until the
    test lets go: no timing involved) refuses a second deploy there, which leaves the lock
    to its holder and fleet-a as it was; the holder then releases it.

    Seen to fail when the lock role's refusal was switched off (`when: false` on the fail
    task): the second run deployed its change to fleet-a while the lock was held.
    """
    before = fleet(hosts)
    release = "/run/algo-trade-test-release-the-lock"
    run_ok(hosts["fleet-a"], f"rm -f {release}")
    holder_run = start_ansible_playbook(
        REPO / "molecule" / "fleet" / "hold_lock.yml", INVENTORY, extra_vars={"release_file": release}
    )

    def lock_written() -> bool:
        assert holder_run.poll() is None, holder_run.communicate()[0][-5000:]
        held = hosts["fleet-a"].run(f"cat {LOCK}").stdout
        return bool(held.strip().endswith("}"))

    try:
        until(lock_written, 180, "the holding run wrote fleet-a's lock")
        held = hosts["fleet-a"].file(LOCK).content_string
        holder = json.loads(held)
        second = ansible_playbook(
            STACK, INVENTORY, "--limit", "fleet-a", extra_vars={"stack_log_max_size": "14m"}
        )
        # The refused run left the lock to its holder.
        assert hosts["fleet-a"].file(LOCK).content_string == held
        assert holder_run.poll() is None, "the holding run ended before the test let it go"
    finally:
        run_ok(hosts["fleet-a"], f"touch {release}")
        holder_out = holder_run.communicate(timeout=300)[0]
        run_ok(hosts["fleet-a"], f"rm -f {release}")
    out = second.stdout + second.stderr
    keep("refused-by-lock", out)
    assert second.returncode != 0, out[-5000:]
    assert (
        f"fleet-a is locked by another deploy: {holder['by']} since {holder['since']}, for "
        f"{holder['version']} (run {holder['id']}; lock file {LOCK})" in " ".join(out.split())
    )
    assert f"run again with -e stack_break_lock={holder['id']}." in " ".join(out.split())
    assert recap(second, "fleet-a")["failed"] == 1
    assert holder_run.returncode == 0, holder_out[-5000:]
    # The change the refused run carried (a log setting) never reached fleet-a.
    assert fleet(hosts) == before
    no_locks_left(hosts)


def test_stale_lock_is_broken_on_request(hosts: dict[str, testinfra.host.Host]) -> None:
    """A lock left by a run that died: -e stack_break_lock=<its run id> removes it, deploys,
    releases (tests/integration/test_lock.py: no other id breaks it)."""
    stale = {
        "id": "0123456789abcdef",
        "by": "ghost@elsewhere",
        "since": "2026-01-01T00:00:00Z",
        "version": "v0",
    }
    run_ok(hosts["fleet-a"], f"echo '{json.dumps(stale)}' > {LOCK}")
    before = fleet(hosts)
    result = ansible_playbook(
        STACK, INVENTORY, "--limit", "fleet-a", extra_vars={"stack_break_lock": stale["id"]}
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert "ghost@elsewhere" not in out
    assert list(summary(out)) == ["fleet-a"]
    assert fleet(hosts) == before
    no_locks_left(hosts)


def test_limit_without_the_build_host_is_refused(hosts: dict[str, testinfra.host.Host]) -> None:
    """stack_build_mode=once with a --limit that leaves out stack_build_host: every host of
    the limit refuses in its plan, before any batch, and nothing is built or deployed.

    Seen to fail when tag.yml's check of the build host was switched off (`when: false`):
    the hosts failed later, in the step that takes the release, with another message.
    """
    before = fleet(hosts)
    result, document = run_json(
        STACK,
        INVENTORY,
        "--limit",
        "fleet-b,fleet-c",
        extra_vars={"stack_build_host": "fleet-a", "stack_log_max_size": "13m"},
    )
    out = result.stdout + result.stderr
    keep("limit-without-build-host", out)
    assert result.returncode != 0, out[-5000:]
    for name in ("fleet-b", "fleet-c"):
        (refusal,) = failures(document, name)
        assert (
            "stack_build_mode=once: the build host fleet-a has not built the release in this run"
            in " ".join(refusal.split())
        ), refusal
        assert document["stats"][name]["changed"] == 0, name
    assert "fleet-a" not in document["stats"]
    # The build play had no host (fleet-a is outside the limit); every host refused in the
    # plan, so the run ended there: no rollout play at all.
    assert batches(document, "Build the release once") == [[]]
    assert plays_from(document, PLAN) == [(PLAN, ["fleet-b", "fleet-c"])]
    assert fleet(hosts) == before
    no_locks_left(hosts)


def test_only_the_hosts_that_change_enter_the_batches(
    hosts: dict[str, testinfra.host.Host], tmp_path: Path
) -> None:
    """The plan reads every host at once; the hosts already on the release never enter a batch.

    Which hosts ran the rollout play is read from the JSON callback, play by play (a
    renamed play fails the comparison). Seen to fail when the plan put every host in
    the rollout (its hand-over then a set_fact of `ansible_play_hosts` on localhost).
    """
    before = fleet(hosts)
    # Through the registry: the canary's push of an image the registry has changes nothing.
    result, document = run_json(SITE, INVENTORY, extra_vars=THROUGH_REGISTRY)
    out = result.stdout + result.stderr
    keep("no-op", out)
    assert result.returncode == 0, out[-5000:]
    # Every host was planned; the rollout play ran on none of them.
    assert plays_from(document, PLAN) == [(PLAN, HOSTS), (ROLLOUT, [])]
    for name in HOSTS:
        assert document["stats"][name]["changed"] == 0, name
        assert " unchanged " in summary(out)[name]
        assert "ok, healthy" in summary(out)[name]
    assert fleet(hosts) == before

    # One host's settings change: only it is rolled out (its app container recreated). On
    # another, a service's container was stopped by hand: the plan sees it (Compose's hash of
    # each service against its container, no dry run), and the rollout starts it again on the
    # same release, the app's container untouched. Seen to fail with the drift taken out of the
    # plan's decision: fleet-b stayed out of the rollout, scheduled-backtest exited.
    run_ok(hosts["fleet-b"], f"docker stop {SCHEDULED}")
    result, document = run_json(SITE, with_host_vars(tmp_path, {"fleet-c": "stack_log_max_size: 12m\n"}))
    out = result.stdout + result.stderr
    keep("one-host-changes", out)
    assert result.returncode == 0, out[-5000:]
    assert plays_from(document, PLAN) == [(PLAN, HOSTS), (ROLLOUT, ["fleet-b"]), (ROLLOUT, ["fleet-c"])]
    assert "Compose would change: scheduled-backtest: exited" in out
    assert host_state(hosts["fleet-b"], SCHEDULED) == "running"
    after = fleet(hosts)
    assert after["fleet-a"] == before["fleet-a"]
    assert after["fleet-b"] == before["fleet-b"]
    assert " changed " in summary(out)["fleet-b"]
    assert after["fleet-c"]["id"] != before["fleet-c"]["id"]
    assert after["fleet-c"]["health"] == "healthy"
    assert run_ok(
        hosts["fleet-c"], f"docker inspect -f '{{{{.HostConfig.LogConfig.Config}}}}' {APP}"
    ).strip() == ("map[max-file:5 max-size:12m]")
    assert " changed " in summary(out)["fleet-c"]
    no_locks_left(hosts)


def test_host_failing_its_plan_stops_the_run_before_any_batch(
    hosts: dict[str, testinfra.host.Host], tmp_path: Path
) -> None:
    """fleet-b's lock is held by another run: with a change due everywhere, no host is touched."""
    held = {"id": "fedcba9876543210", "by": "other@elsewhere", "since": "2026-01-01T00:00:00Z"}
    run_ok(hosts["fleet-b"], f"echo '{json.dumps(held)}' > {LOCK}")
    before = fleet(hosts)
    try:
        result, document = run_json(
            STACK, INVENTORY, extra_vars={"stack_rollout_batches": [2, "100%"], "stack_log_max_size": "11m"}
        )
    finally:
        run_ok(hosts["fleet-b"], f"rm -f {LOCK}")
    out = result.stdout + result.stderr
    keep("failed-plan", out)
    assert result.returncode != 0, out[-5000:]
    (refusal,) = failures(document, "fleet-b")
    assert "fleet-b is locked by another deploy: other@elsewhere" in refusal
    assert document["stats"]["fleet-b"]["failures"] == 1
    # fleet-b failed its plan; the rollout play ran on no host.
    assert plays_from(document, PLAN) == [(PLAN, HOSTS), (ROLLOUT, [])]
    lines = summary(out)
    assert "FAILED" in lines["fleet-b"]
    assert "not reached" in lines["fleet-a"]
    assert "not reached" in lines["fleet-c"]
    assert fleet(hosts) == before
    no_locks_left(hosts)


def test_failed_host_stops_the_rollout_in_a_batch_of_several(
    hosts: dict[str, testinfra.host.Host], tmp_path: Path
) -> None:
    """fleet-b fails its health gate beside fleet-a in the first batch: fleet-c is never reached.

    Ansible's max_fail_percentage alone lets the next batch start here (the failure
    sits in a block with an always section); the rollout play stops itself. Seen to
    fail when that stop (the end_play task) was removed: a second batch ran fleet-c.
    """
    before = fleet(hosts)
    inventory = with_host_vars(
        tmp_path, {"fleet-b": "stack_health_path: /api/no-such-route\nstack_health_timeout: 45\n"}
    )
    result, document = run_json(
        STACK, inventory, extra_vars={"stack_rollout_batches": [2, "100%"], "stack_log_max_size": "11m"}
    )
    out = result.stdout + result.stderr
    keep("failed-in-batch", out)
    assert result.returncode != 0, out[-5000:]
    assert any("failed on fleet-b" in message for message in failures(document, "fleet-b"))
    assert document["stats"]["fleet-b"]["failures"] == 1
    assert document["stats"]["fleet-a"]["failures"] == 0
    # One batch of two ran the rollout; no second batch started for fleet-c.
    assert plays_from(document, PLAN) == [(PLAN, HOSTS), (ROLLOUT, ["fleet-a", "fleet-b"])]
    after = fleet(hosts)
    # fleet-a took the release; fleet-b is back on its containers' settings; fleet-c untouched.
    assert after["fleet-a"]["id"] != before["fleet-a"]["id"]
    assert after["fleet-c"] == before["fleet-c"]
    wait_healthy(hosts["fleet-b"])
    lines = summary(out)
    assert "ok, healthy" in lines["fleet-a"]
    assert "FAILED" in lines["fleet-b"]
    assert "not reached" in lines["fleet-c"]
    no_locks_left(hosts)


def docker_daemon(host: testinfra.host.Host) -> str:
    """daemon.json's digest and the running dockerd's PID."""
    return run_ok(
        host, "sha256sum /etc/docker/daemon.json && systemctl show -p MainPID --value docker.service"
    ).strip()


def test_a_setting_the_deployed_stack_forbids_stops_the_run_before_any_play_changes_a_host(
    hosts: dict[str, testinfra.host.Host], tmp_path: Path
) -> None:
    """Another database name on fleet-b (its database was made with the first), in the same
    run as a Docker daemon option for every host: the host's checks against its deployed
    stack refuse it in the preflight, before the docker play. No host's daemon.json or
    dockerd changes, nor its containers; the run reports no change on any host.

    Seen to fail on the demo host with the preflight's play of these checks taken out: the
    docker play wrote daemon.json and restarted dockerd before the stack's checks refused."""
    daemons = {name: docker_daemon(host) for name, host in hosts.items()}
    before = fleet(hosts)
    inventory = with_host_vars(tmp_path, {"fleet-b": "stack_db_name: algo_other\n"})
    result, document = run_json(SITE, inventory, extra_vars={"docker_daemon_options": {"debug": True}})
    out = result.stdout + result.stderr
    keep("refused-deployed-setting", out)
    assert result.returncode != 0, out[-5000:]
    (refusal,) = failures(document, "fleet-b")
    assert "stack_db_name=algo_other, but the database of the stack on fleet-b was made as" in refusal
    assert {name: document["stats"][name]["changed"] for name in HOSTS} == dict.fromkeys(HOSTS, 0)
    assert "Install and configure Docker Engine" not in [play["play"]["name"] for play in document["plays"]]
    assert {name: docker_daemon(host) for name, host in hosts.items()} == daemons
    assert fleet(hosts) == before
    no_locks_left(hosts)
