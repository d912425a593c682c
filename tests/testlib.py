"""Helpers shared by the Molecule scenarios' testinfra verifiers."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import testinfra.host
import testinfra.utils.ansible_runner
import yaml

BUSYBOX_IMAGE = "local/busybox:test"
# The names of the integration tests' hosts start with it. Runs side by side on one Docker
# engine keep apart with prefixes of their own (it also names their network, dashes cut).
HOST_PREFIX = os.environ.get("TESTBED_HOST_PREFIX", "pytest-")


def expected_hosts(inventory: str, group: str, names: list[str]) -> list[str]:
    """The hosts of an inventory group, which must be exactly `names`.

    A verifier's `testinfra_hosts` that resolves to no host skips every host test and
    passes: this fails the collection instead, naming what the inventory holds.
    """
    runner = testinfra.utils.ansible_runner.AnsibleRunner(inventory)
    found = runner.get_hosts(group)
    if sorted(found) != sorted(names):
        raise RuntimeError(f"{inventory}: group {group!r} holds {found}, the tests expect {names}")
    return list(names)


def secret_forms(secret: str) -> dict[str, str]:
    """The secret as it could show up: plain, URL-encoded, hex, and base64 at each of the
    three alignments it can have inside a longer base64 text (e.g. `Basic user:secret`)."""
    raw = secret.encode()
    forms = {"plain": secret, "url-encoded": quote(secret, safe=""), "hex": raw.hex()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        # The first characters carry bits of the padding bytes, the last group the end's.
        forms[f"base64+{shift}"] = encoded[(shift * 8 + 5) // 6 : -4]
    return forms


def leaked_secrets(text: str, secrets: list[str]) -> list[str]:
    """Which forms of which secrets (by index) appear in text; the values are never shown."""
    return [
        f"secret #{i} ({form})"
        for i, secret in enumerate(secrets)
        for form, value in secret_forms(secret).items()
        if value and value in text
    ]


def until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    """Wait for a condition up to a deadline; fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)


def instance_name(host: testinfra.host.Host) -> str:
    """The Molecule instance (and outer container) name behind a testinfra host."""
    return str(host.backend.get_hostname())


def run_ok(host: testinfra.host.Host, command: str, *args: str) -> str:
    """Run a command on the host; fail with its output when it exits non-zero."""
    result = host.run(command, *args)
    assert result.rc == 0, f"{result.command!r} exited {result.rc}:\n{result.stdout}{result.stderr}"
    return str(result.stdout)


def run_with_stdin(host: testinfra.host.Host, command: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """Run a shell command on the host with `stdin` on its standard input: a secret given
    so is on no process's argv (testinfra's run puts the whole command on one)."""
    return subprocess.run(
        ["docker", "exec", "-i", instance_name(host), "sh", "-c", command],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


EVENTS_FILE = "/root/algotrade-events"  # on the host under test


@contextmanager
def streamed_events(host: testinfra.host.Host, filters: str, fmt: str) -> Iterator[list[str]]:
    """The host engine's events that match filters (`--filter type=image ...`) while the
    body runs, one line each in fmt, filled in when the body ends. Streamed to a file as
    they happen: the engine keeps only its last 256 events in memory, fewer than the
    services' health checks make during a build and a switch (a read-back with
    --since/--until lost the first ones)."""
    since = run_ok(host, "date +%s.%N").strip()
    # An engine restart (the docker role's, on a takeover) ends a stream: the loop takes it
    # up again from when it ended; the restarted engine holds what happened since.
    follow = (
        'since=$1; shift; while :; do docker events --since "$since" "$@" 2>/dev/null;'
        " since=$(date +%s.%N); sleep 0.5; done"
    )
    watcher = run_ok(
        host,
        f"nohup setsid sh -c {shlex.quote(follow)} sh {since} {filters}"
        f" --format {shlex.quote(fmt)} > {EVENTS_FILE} 2>&1 < /dev/null & echo $!",
    ).strip()
    events: list[str] = []
    try:
        yield events
    finally:
        time.sleep(2)  # the last events reach the file
        host.run(f"kill -- -{watcher}")
    events.extend(run_ok(host, f"cat {EVENTS_FILE}").splitlines())


def docker_json(host: testinfra.host.Host, command: str) -> dict[str, Any]:
    """Run a docker command that prints a JSON object (`--format '{{json .}}'`), decoded."""
    value = json.loads(run_ok(host, command))
    assert isinstance(value, dict), f"{command!r} printed {value!r}, not a JSON object"
    return value


def sideload_image(host: testinfra.host.Host, image: str = BUSYBOX_IMAGE) -> None:
    """Copy an image from the controller's engine into the instance's engine."""
    if host.run("docker image inspect %s", image).rc == 0:
        return
    name = instance_name(host)
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.run(
        ["docker", "exec", "-i", name, "docker", "load"],
        stdin=save.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    save.wait()
    assert save.returncode == 0, f"docker save {image} failed"
    assert load.returncode == 0, load.stderr


REPO = Path(__file__).resolve().parent.parent
RESOURCES = REPO / "molecule" / "resources"


def in_container(name: str, command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """A shell command in a throwaway host (docker exec), never raising on failure."""
    return subprocess.run(
        ["docker", "exec", "-i", name, "sh", "-c", command],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def collection_plugin(kind: str, name: str) -> ModuleType:
    """One of the collection's plugins as a module, e.g. ("test", "placeholder")."""
    spec = importlib.util.spec_from_file_location(name, REPO / "plugins" / kind / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ansible_playbook_command(
    playbook: Path | str,
    inventory: Path | str,
    *args: str,
    extra_vars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of an ansible-playbook run with the repository's configuration."""
    command = ["ansible-playbook", "-i", str(inventory), str(playbook), *args]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    base = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    return command, {**os.environ, **base, **(env or {})}


def ansible_playbook(
    playbook: Path | str,
    inventory: Path | str,
    *args: str,
    extra_vars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook with the repository's configuration; never raises on failure."""
    command, environment = ansible_playbook_command(
        playbook, inventory, *args, extra_vars=extra_vars, env=env
    )
    return subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=REPO)


def run_json(
    playbook: Path | str, inventory: Path | str, *args: str, extra_vars: dict[str, Any] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """A run whose output is the ansible.posix.json callback's document (returned decoded),
    followed by the rollout summary, which the summary plugin still prints."""
    result = ansible_playbook(
        playbook,
        inventory,
        *args,
        extra_vars=extra_vars,
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    start = result.stdout.find("{\n")
    assert start >= 0, result.stdout[-3000:] + result.stderr[-3000:]
    document, _end = json.JSONDecoder().raw_decode(result.stdout, start)
    assert isinstance(document, dict)
    return result, document


def failures(document: dict[str, Any], host: str) -> list[str]:
    """What each task that failed on a host said (not those ignore_errors took), one text
    per task: its message, a loop's failed items' messages (the task's own is then "One
    or more items failed"), and a role's argument errors, as the default callback prints them."""

    def said(result: dict[str, Any]) -> str:
        errors = " ".join(map(str, result.get("argument_errors", [])))
        return f"{result.get('msg', '')} {errors}".strip()

    return [
        " ".join(said(part) for part in [result, *result.get("results", [])] if part.get("failed"))
        for entry in document["plays"]
        for task in entry["tasks"]
        if (result := task["hosts"].get(host)) and result.get("failed") and not result.get("ignore_errors")
    ]


def start_ansible_playbook(
    playbook: Path | str, inventory: Path | str, *args: str, extra_vars: dict[str, Any] | None = None
) -> subprocess.Popen[str]:
    """Start ansible-playbook in the background (output in .communicate())."""
    command, environment = ansible_playbook_command(playbook, inventory, *args, extra_vars=extra_vars)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=REPO
    )


def recap(result: subprocess.CompletedProcess[str], host: str) -> dict[str, int]:
    """The PLAY RECAP counters of one host (ok, changed, failed, ...)."""
    for line in result.stdout.splitlines():
        if line.startswith(f"{host} ") and "ok=" in line:
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    raise AssertionError(f"no recap for {host}:\n{result.stdout}\n{result.stderr}")


def failed_task(result: subprocess.CompletedProcess[str]) -> str:
    """The name of the task that failed first in a run (its `TASK [...]` header)."""
    before, fatal, _after = result.stdout.partition("fatal:")
    assert fatal, f"no task failed:\n{result.stdout[-3000:]}"
    return str(re.findall(r"^TASK \[(.*?)\]", before, re.MULTILINE)[-1])


def check_described_host(tmp_path: Path, extra_vars: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """A role (extra var described_role) in check mode on the controller, described by the
    facts in described_facts instead of gathered ones: for preflight refusals."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("described ansible_connection=local ansible_python_interpreter=python3\n")
    playbook = REPO / "tests" / "integration" / "playbooks" / "described_host.yml"
    return ansible_playbook(playbook, inventory, "--check", extra_vars=extra_vars)


def _testbed_state(
    names: list[str], workdir: Path, scenario: str, transport: str = "docker"
) -> tuple[dict[str, Any], dict[str, str]]:
    platforms = {"molecule_yml": {"platforms": [{"name": n, "transport": transport} for n in names]}}
    return {**platforms, "molecule_ephemeral_directory": str(workdir)}, {"MOLECULE_SCENARIO_NAME": scenario}


def _ssh_inventory(workdir: Path) -> dict[str, Any]:
    """How create.yml says to reach its SSH hosts (instance_config.yml): as deploy, with
    the key it made and its known_hosts, host keys checked."""
    options = (
        f"-o UserKnownHostsFile={workdir}/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    )
    return {
        config["instance"]: {
            "ansible_host": config["address"],
            "ansible_user": config["user"],
            "ansible_private_key_file": config["identity_file"],
            "ansible_ssh_common_args": options,
        }
        for config in yaml.safe_load((workdir / "instance_config.yml").read_text())
    }


def remove_hosts(
    names: list[str], workdir: Path, scenario: str = "pytest"
) -> subprocess.CompletedProcess[str]:
    """Remove test bed hosts, their Docker volumes and their network, where they exist."""
    state, env = _testbed_state(names, workdir, scenario)
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = workdir / "no-hosts.yml"  # destroy.yml runs on the implicit localhost
    inventory.write_text(json.dumps({"all": {"hosts": {}}}))
    return ansible_playbook(RESOURCES / "destroy.yml", inventory, extra_vars=state, env=env)


@contextmanager
def throwaway_hosts(
    names: list[str], workdir: Path, scenario: str = "pytest", transport: str = "docker"
) -> Iterator[Path]:
    """Start test bed hosts as Molecule does; yield an inventory that reaches them (with
    transport ssh: over SSH as deploy, who has sudo; the inventory says nothing of become).

    The hosts share the network `molecule-<scenario>`; they, their Docker volumes and
    the network are removed on the way out, also when the body fails.
    """
    state, env = _testbed_state(names, workdir, scenario, transport)
    inventory = workdir / "inventory.yml"
    inventory.write_text(
        json.dumps({"all": {"hosts": {n: {"ansible_connection": "community.docker.docker"} for n in names}}})
    )
    try:
        # The inventory lacks localhost: the implicit one runs the controller's Python.
        created = ansible_playbook(RESOURCES / "create.yml", inventory, extra_vars=state, env=env)
        assert created.returncode == 0, created.stdout + created.stderr
        if transport == "ssh":
            inventory.write_text(json.dumps({"all": {"hosts": _ssh_inventory(workdir)}}))
        yield inventory
    finally:
        remove_hosts(names, workdir, scenario)


_STACK_ROLE = REPO / "roles" / "stack"
# The image role renders the build files; the stack role holds the settings.
_TEMPLATE_DIRS = (_STACK_ROLE / "templates", REPO / "roles" / "image" / "templates")


def ansible_template(src: Path, out: Path, var_files: list[Path], extra: dict[str, Any]) -> str:
    """src rendered by ansible.builtin.template on localhost with var_files, then extra;
    returns the file written at out."""
    command = ["ansible", "localhost", "-m", "ansible.builtin.template", "-a", f"src={src} dest={out}"]
    for path in var_files:
        command += ["-e", f"@{path}"]
    result = subprocess.run(
        [*command, "-e", json.dumps(extra)], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_text()


def render_template(template: str, tmp_path: Path, **overrides: object) -> str:
    """A template of the stack or image role, rendered as the role renders it (its defaults and
    the roles' vars), the overrides last; returns the file written in tmp_path."""
    extra = {"__stack_arch": "x86_64", "stack_ttyd_release_url": "https://mirror.example/ttyd", **overrides}
    return ansible_template(
        next(d / template for d in _TEMPLATE_DIRS if (d / template).exists()),
        tmp_path / template.removesuffix(".j2"),
        [
            _STACK_ROLE / "defaults" / "main.yml",
            _STACK_ROLE / "vars" / "main.yml",
            REPO / "roles" / "image" / "vars" / "main.yml",
        ],
        extra,
    )


def playbook_tasks(node: object) -> list[dict[str, Any]]:
    """Every task in a playbook or task file, blocks and plays opened."""
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for item in node:
            found += playbook_tasks(item)
    elif isinstance(node, dict):
        found.append(node)
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            found += playbook_tasks(node.get(key))
    return found
