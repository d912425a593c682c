"""The stack scenario's helpers (stackenv and its test modules) serve this scenario too."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stack" / "tests"))


def pytest_configure(config: pytest.Config) -> None:
    # The stack's test modules this one imports mark theirs (molecule/stack/tests/conftest.py).
    config.addinivalue_line("markers", "disruptive: stops, kills or redeploys; leaves the stack healthy")
