"""Helpers shared by the Molecule scenarios' testinfra verifiers."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import testinfra.host

BUSYBOX_IMAGE = "local/busybox:test"


def instance_name(host: testinfra.host.Host) -> str:
    """The Molecule instance (and outer container) name behind a testinfra host."""
    return str(host.backend.get_hostname())


def run_ok(host: testinfra.host.Host, command: str, *args: str) -> str:
    """Run a command on the host; fail with its output when it exits non-zero."""
    result = host.run(command, *args)
    assert result.rc == 0, f"{result.command!r} exited {result.rc}:\n{result.stdout}{result.stderr}"
    return str(result.stdout)


def docker_json(host: testinfra.host.Host, command: str) -> Any:
    """Run a docker command whose output is JSON (e.g. with `--format json`), decoded."""
    return json.loads(run_ok(host, command))


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
    assert save.returncode == 0 and load.returncode == 0, load.stderr
