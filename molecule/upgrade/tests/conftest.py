"""The stack scenario's helpers (stackenv and its test modules) serve this scenario too."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stack" / "tests"))
