"""The generated variables reference matches the argument specs it comes from."""

from __future__ import annotations

import subprocess
import sys

from testlib import REPO


def test_role_docs_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "role_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
