"""docs/adding-a-service.md, followed to the letter: a service added the way it says
touches only the files it lists (at most five), and the stack role does the rest: the
service's files get their digest, their directory and their compose secrets, the
release lists them, and a change of them changes only that service's digest.

Seen to fail when the guide listed a sixth step (a file the service did not need: both
tests), and when render.yml digested only the app's and the proxy's files (the render
failed: the compose file had no digest for the new service).
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from testlib import REPO

GUIDE = REPO / "docs" / "adding-a-service.md"
ROLE = REPO / "roles" / "stack"

# What the guide's steps 1-4 say to write, for a signal collector that reads one secret.
SERVICE = """\
  collector:
    image: {{ __release_app_image }}
    command: [algo-trade, collect, --interval, {{ stack_collector_interval | to_json }}]
    user: "{{ __stack_app_uid }}:{{ __stack_app_uid }}"
    read_only: true
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    labels:
      org.algotrade.inputs: {{ __release_input_digests.collector | to_json }}
    secrets:
{% for file in __stack_release_files.collector | selectattr('content') %}
      - {{ file.name }}
{% endfor %}
    healthcheck:
      test: ["CMD", "true"]
    restart: unless-stopped
    logging: *logging
    networks: [backend]

"""
FILES = """\
  collector:
    - {name: collector_token, content: "{{ stack_collector_token }}", uid: "{{ __stack_app_uid }}",
       mode: "0400"}
"""
DEFAULTS = """
# The signal collector: how often it collects, and its token (a vault value).
stack_collector_interval: 60s
stack_collector_token: ""
"""
SPEC = """\
      stack_collector_interval:
        description: How often the signal collector collects.
        type: str
        default: 60s
      stack_collector_token:
        description: The signal collector's token (Ansible Vault).
        type: str
        default: ""
"""

PLAYBOOK = """\
- name: Render a release with the role under test
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.include_role:
        name: "{{ role }}"
        tasks_from: render_probe
    - name: Keep what render.yml fixed
      ansible.builtin.copy:
        content: "{{ {'compose': __release_compose, 'release': __release_rendered,
                      'digests': __release_input_digests} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""
# The release role renders from within the stack role (its settings and templates):
# the test's own entry point into the copy, added after the guide's files are compared.
PROBE = """\
- name: render_probe | Render the release
  ansible.builtin.include_role:
    name: algotrade.deploy.release
    tasks_from: render
"""
# What the release role's host.yml reads on a host, and secrets that pass the role's rules.
SETTINGS = {
    "__image_tag": "0123456789abcdef",
    "__release_migrations": [],
    "__release_tls_cert_pem": "",
    "stack_db_password": "x" * 24,
    "stack_tui_password": "y" * 24,
    "stack_api_password": "z" * 24,
    "stack_tui_bind": "192.0.2.10",
}


def listed_files() -> list[str]:
    """The files the guide's numbered steps name, relative to roles/stack or the repository."""
    return re.findall(r"^\d+\. \*{0,2}`([^`]+)`", GUIDE.read_text(), re.MULTILINE)


def insert(path: Path, before: str, text: str) -> None:
    content = path.read_text()
    assert content.count(before) == 1, f"{path}: the guide's anchor {before!r} moved"
    path.write_text(content.replace(before, text + before))


def add_collector(role: Path) -> None:
    insert(role / "templates" / "compose.yaml.j2", "secrets:\n  db_password:\n", SERVICE)
    insert(role / "vars" / "main.yml", "# render.yml names each service's files", FILES)
    (role / "defaults" / "main.yml").write_text((role / "defaults" / "main.yml").read_text() + DEFAULTS)
    spec = role / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text() + SPEC)


def touched(original: Path, copy: Path) -> set[str]:
    comparison = filecmp.dircmp(original, copy)
    changed: set[str] = set()

    def walk(c: filecmp.dircmp[str], prefix: str) -> None:
        changed.update(prefix + name for name in c.diff_files + c.left_only + c.right_only)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(comparison, "")
    return changed


def render(role: Path, tmp_path: Path, **overrides: object) -> dict[str, Any]:
    playbook, out = tmp_path / "render.yml", tmp_path / "out.json"
    playbook.write_text(PLAYBOOK)
    extra = {**SETTINGS, "role": str(role), "out": str(out), **overrides}
    extra["ansible_python_interpreter"] = sys.executable
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document: dict[str, Any] = json.loads(out.read_text())
    document["compose"] = yaml.safe_load(document["compose"])
    return document


def test_the_guide_names_at_most_five_files() -> None:
    files = listed_files()
    assert 1 <= len(files) <= 5, files
    assert all((ROLE / f).exists() or (REPO / f).exists() for f in files), files


def test_a_service_added_by_the_guide_touches_only_its_files_and_the_role_does_the_rest(
    tmp_path: Path,
) -> None:
    role = tmp_path / "roles" / "stack"
    shutil.copytree(ROLE, role)
    add_collector(role)
    # Step 5 is generated (make docs); steps 1-4 are all the role needed.
    assert touched(ROLE, role) == {f for f in listed_files() if (ROLE / f).exists()}
    (role / "tasks" / "render_probe.yml").write_text(PROBE)

    before = render(role, tmp_path, stack_collector_token="first-token")  # noqa: S106
    digest = before["digests"]["collector"]
    directory = f"/opt/algo-trade/inputs/collector-{digest}"
    compose = before["compose"]
    assert compose["secrets"]["collector_token"] == {"file": f"{directory}/collector_token"}
    collector = compose["services"]["collector"]
    assert collector["secrets"] == ["collector_token"]
    assert collector["labels"]["org.algotrade.inputs"] == digest
    assert collector["command"][-1] == "60s"
    assert f"collector-{digest}" in before["release"]["inputs"]

    after = render(role, tmp_path, stack_collector_token="second-token")  # noqa: S106
    assert after["digests"]["collector"] != digest, "a new token recreates the collector"
    assert {k: v for k, v in after["digests"].items() if k != "collector"} == {
        k: v for k, v in before["digests"].items() if k != "collector"
    }, "and no other service"
    assert after["release"]["id"] != before["release"]["id"]

    # A collector without its secret has no files: no directory, no secrets entry.
    empty = render(role, tmp_path)
    assert "collector_token" not in empty["compose"]["secrets"]
    assert not any(name.startswith("collector-") for name in empty["release"]["inputs"])
