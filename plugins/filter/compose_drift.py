"""Jinja filter: how a Compose project's containers differ from its configuration.

``engine.containers | algotrade.deploy.compose_drift(hashes.stdout_lines)`` (documentation in
compose_drift.yml).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

SERVICE = "com.docker.compose.service"
CONFIG_HASH = "com.docker.compose.config-hash"
ONEOFF = "com.docker.compose.oneoff"


def compose_drift(containers: Sequence[Mapping[str, object]], hash_lines: Sequence[str]) -> list[str]:
    """What `compose up` would change, one line per service: a service without a container,
    a container that is not running, of another configuration, a second one, or of a service
    the configuration lacks (an orphan). One-off containers (`compose run`) do not count.
    ``containers``: the engine's container list (its Labels and State); ``hash_lines``: the
    output of `docker compose config --hash '*'`, a line per service (name, space, hash)."""
    hashes = dict(line.split(" ", 1) for line in hash_lines if line.strip())
    seen: dict[str, int] = {}
    drift: list[str] = []
    for container in containers:
        labels = container.get("Labels")
        labels = labels if isinstance(labels, Mapping) else {}
        if str(labels.get(ONEOFF, "False")) == "True":
            continue
        service = str(labels.get(SERVICE, ""))
        seen[service] = seen.get(service, 0) + 1
        if service not in hashes:
            drift.append(f"{service or '?'}: a container of no service of the release")
        elif seen[service] > 1:
            drift.append(f"{service}: more than one container")
        elif container.get("State") != "running":
            drift.append(f"{service}: {container.get('State', 'unknown')}")
        elif labels.get(CONFIG_HASH) != hashes[service]:
            drift.append(f"{service}: created from another configuration")
    drift.extend(f"{service}: no container" for service in hashes if service not in seen)
    return sorted(drift)


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[..., object]]:
        return {"compose_drift": compose_drift}
