"""The README is a front door: short, and without figures that age (one run's timings, commit
hashes). Measured figures live in docs/benchmarks.md."""

from __future__ import annotations

import re

from testlib import REPO

README = (REPO / "README.md").read_text()
# A duration: a number and a unit of time. CI's limit is a rule, not a measurement.
DURATION = re.compile(r"\b\d+(?:\.\d+)? ?(?:s|sec|seconds?|min|minutes?|h|hours?)\b")
LIMITS = {"90 minutes"}
# A commit hash: 7 to 40 hex digits with at least one digit and one letter.
HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
WORDS = {"ed25519"}  # hex-looking words that are not hashes


def hashes(text: str) -> list[str]:
    return [h for h in HASH.findall(text) if h not in WORDS]


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) <= 250


def test_the_readme_holds_no_timings_or_commit_hashes() -> None:
    assert [m for m in DURATION.findall(README) if m not in LIMITS] == []
    assert hashes(README) == []


def test_the_patterns_find_what_they_are_for() -> None:
    assert DURATION.findall("stack 58 min, lint 35 s, 1.5 minutes") == ["58 min", "35 s", "1.5 minutes"]
    assert hashes("main = a4708ae; key ed25519; id 5f713dd2e6b78149") == ["a4708ae", "5f713dd2e6b78149"]
