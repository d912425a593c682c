"""The run summary printed by the callback plugin algotrade.deploy.rollout_summary."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

from testlib import REPO


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "rollout_summary", REPO / "plugins" / "callback" / "rollout_summary.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLAN = {"hosts": ["a", "b", "c"], "batches": ["1", "25%", "100%"], "build_host": "a"}
V1, V2 = "algo-trade/app:1111111111111111", "algo-trade/app:2222222222222222"


def _report(before: str, after: str, **extra: object) -> dict[str, Any]:
    base = {"before": before, "after": after, "target": V2, "changed": before != after, "passed": True}
    return {**base, "health": "healthy", "check_mode": False, **extra}


def _lines(reports: dict[str, dict[str, Any]], failures: dict[str, str]) -> dict[str, str]:
    lines: list[str] = _plugin().summary_lines(PLAN, reports, failures)
    return {line.split()[0]: line for line in lines if line.split()[0] in PLAN["hosts"]} | {
        "": "\n".join(lines)
    }


def test_complete_rollout() -> None:
    lines = _lines({h: _report(V1, V2) for h in "abc"}, {})
    for host in "abc":
        assert "1111111111111111  2222222222222222  changed" in lines[host]
        assert lines[host].endswith("ok, healthy")
    assert "STOPPED" not in lines[""]
    assert "image built once on a" in lines[""]


def test_stopped_rollout_names_the_hosts_not_reached() -> None:
    failed = _report(V1, V1, passed=False, changed=True)
    lines = _lines({"a": failed}, {"a": "Fail the host with what went wrong"})
    assert "FAILED (Fail the host with what went wrong); put back on 1111111111111111, healthy" in lines["a"]
    for host in "bc":
        assert "untouched" in lines[host]
        assert "not reached: rollout stopped before its batch" in lines[host]
    assert "Rollout STOPPED: a host failed; 2 of 3 hosts were not reached." in lines[""]


def test_refused_before_the_release() -> None:
    lines = _lines({}, {"a": "Refuse to deploy while another run holds the lock"})
    assert "FAILED before its release (Refuse to deploy while another run holds the lock)" in lines["a"]
    assert "not reached" in lines["b"]


def test_check_mode_says_what_would_change() -> None:
    reports = {"a": _report(V1, V1, check_mode=True, passed=False), "b": _report(V2, V2, check_mode=True)}
    lines = _lines(reports, {})
    assert "would change" in lines["a"]
    assert "not checked (check mode)" in lines["a"]
    assert "no change" in lines["b"]
    assert "not reached: no release recorded" in lines["c"]


def test_check_mode_counts_a_settings_change_on_the_same_image() -> None:
    """The plan found files to change on a host that keeps its image: it would change."""
    reports = {"a": _report(V2, V2, check_mode=True, changed=True), "b": _report(V2, V2, check_mode=True)}
    lines = _lines(reports, {})
    assert "would change" in lines["a"]
    assert "no change" in lines["b"]


def test_a_lock_resolved_on_the_build_host_is_said() -> None:
    """A source without a Cargo.lock: the summary says the versions were resolved on the
    build host (issue: the run summary says so); a source with one says nothing."""
    plan = {"hosts": ["a", "b"], "batches": [2]}
    resolved = {"a": _report(V1, V2, lock_resolved=True), "b": _report(V1, V2, lock_resolved=False)}
    lines: list[str] = _plugin().summary_lines(plan, resolved, {})
    assert lines[-1] == (
        "Cargo.lock: the source has none; the versions were resolved on the build host"
        " and kept with the release (a)"
    )
    plain: list[str] = _plugin().summary_lines(plan, {"a": _report(V1, V2)}, {})
    assert not [line for line in plain if "Cargo.lock" in line]
