"""What `compose up` would change on a host whose release is unchanged (filter
algotrade.deploy.compose_drift), as the rollout's plan reads it instead of a dry run."""

from __future__ import annotations

from testlib import collection_plugin

compose_drift = collection_plugin("filter", "compose_drift").compose_drift

HASHES = ["app 1111", "db 2222", "proxy 3333"]


def container(service: str, config_hash: str, state: str = "running", **labels: str) -> dict[str, object]:
    return {
        "State": state,
        "Labels": {
            "com.docker.compose.project": "algo-trade",
            "com.docker.compose.service": service,
            "com.docker.compose.config-hash": config_hash,
        }
        | labels,
    }


RUNNING = [container("app", "1111"), container("db", "2222"), container("proxy", "3333")]


def test_a_project_as_configured_has_no_drift() -> None:
    assert compose_drift(RUNNING, [*HASHES, ""]) == []


def test_a_stopped_container_is_drift() -> None:
    assert compose_drift([*RUNNING[:2], container("proxy", "3333", "exited")], HASHES) == ["proxy: exited"]


def test_a_removed_container_is_drift() -> None:
    assert compose_drift(RUNNING[1:], HASHES) == ["app: no container"]


def test_a_container_of_another_configuration_is_drift() -> None:
    assert compose_drift([container("app", "9999"), *RUNNING[1:]], HASHES) == [
        "app: created from another configuration"
    ]


def test_an_orphan_and_a_second_container_are_drift() -> None:
    found = compose_drift([*RUNNING, container("signal-collector", "4444"), container("app", "1111")], HASHES)
    assert found == [
        "app: more than one container",
        "signal-collector: a container of no service of the release",
    ]


def test_one_off_containers_do_not_count() -> None:
    oneoff = container("app", "1111", "exited", **{"com.docker.compose.oneoff": "True"})
    assert compose_drift([*RUNNING, oneoff], HASHES) == []
