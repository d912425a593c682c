"""Fixtures for role tests on throwaway test bed hosts (need Docker and the test images)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import HOST_PREFIX, throwaway_hosts


@pytest.fixture(scope="module")
def fresh_host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new Debian 13 host with nothing installed; yields its inventory (host `pytest-<module>`, or
    `$TESTBED_HOST_PREFIX<module>`)."""
    name = HOST_PREFIX + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    with throwaway_hosts([name], tmp_path_factory.mktemp(name), scenario=HOST_PREFIX.strip("-")) as inventory:
        yield inventory
