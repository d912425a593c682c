# Copyright: algotrade.deploy maintainers
# MIT License (see LICENSE)
"""Prints a summary of the stack rollout at the end of every run, a failed one too."""

from __future__ import annotations

DOCUMENTATION = """
name: rollout_summary
type: aggregate
short_description: Summary of the trading stack's rollout at the end of a run
description:
  - At the end of every run of the collection's C(site) or C(stack) playbook, a failed or
    stopped one included, prints one line per host of the run - the app image before and
    after, whether the release changed anything, its health, and the hosts a stopped rollout
    did not reach.
  - Reads the facts that the stack role records (C(__checks_rollout_plan), C(__stack_release_report))
    and the tasks that failed; prints nothing for runs of other playbooks.
  - Enable it with C(callbacks_enabled = algotrade.deploy.rollout_summary) in C(ansible.cfg)
    or C(ANSIBLE_CALLBACKS_ENABLED).
version_added: 0.1.0
author: algotrade.deploy maintainers (@algotrade)
"""

from typing import Any  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

PLAN = "__checks_rollout_plan"
REPORT = "__stack_release_report"


def _tag(image: str) -> str:
    """The image's tag, or the whole reference when it has none; '-' for no image."""
    if not image:
        return "-"
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else image


def _state(report: dict[str, Any], failed: str | None) -> tuple[str, str]:
    """(change, result) of one host that the rollout reached."""
    before, after = str(report.get("before", "")), str(report.get("after", ""))
    target = str(report.get("target", ""))
    if report.get("check_mode"):
        due = str(report.get("changed", False)).lower() == "true" or (target and target != before)
        change = "would change" if due else "no change"
    else:
        change = "changed" if str(report.get("changed", False)).lower() == "true" else "unchanged"
    health = str(report.get("health", "")) or "unknown"
    if failed is None and str(report.get("passed", False)).lower() == "true":
        return change, f"ok, {health}"
    if failed is None:
        why = "check mode" if report.get("check_mode") else "no health gate"
        return change, f"not checked ({why}), {health}"
    if target and after == before and before and target != before:
        return change, f"FAILED ({failed}); put back on {_tag(before)}, {health}"
    return change, f"FAILED ({failed}), {health}"


def summary_lines(
    plan: dict[str, Any], reports: dict[str, dict[str, Any]], failures: dict[str, str]
) -> list[str]:
    """The summary table: one line per host of the plan, in rollout order."""
    hosts = [str(h) for h in plan.get("hosts", [])]
    stopped = any(h in failures for h in hosts)
    rows = [("HOST", "BEFORE", "AFTER", "CHANGE", "RESULT")]
    for host in hosts:
        if host in reports:
            report = reports[host]
            change, result = _state(report, failures.get(host))
            before, after = _tag(str(report.get("before", ""))), _tag(str(report.get("after", "")))
            rows.append((host, before, after, change, result))
        elif host in failures:
            rows.append((host, "-", "-", "unchanged", f"FAILED before its release ({failures[host]})"))
        else:
            why = "rollout stopped before its batch" if stopped else "no release recorded"
            rows.append((host, "-", "-", "untouched", f"not reached: {why}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])), row[4]]) for row in rows]
    batches = ", ".join(str(b) for b in plan.get("batches", []))
    build = plan.get("build_host") or ""
    lines.append(f"batches: {batches}" + (f"; image built once on {build}" if build else ""))
    resolved = [h for h in hosts if str(reports.get(h, {}).get("lock_resolved", False)).lower() == "true"]
    if resolved:
        lines.append(
            "Cargo.lock: the source has none; the versions were resolved on the build host and kept with "
            f"the release ({', '.join(resolved)})"
        )
    if stopped:
        reached = [h for h in hosts if h in reports or h in failures]
        missed = len(hosts) - len(reached)
        if missed:
            lines.append(f"Rollout STOPPED: a host failed; {missed} of {len(hosts)} hosts were not reached.")
        else:
            lines.append("Run FAILED: see the failed hosts above.")
    return [line.rstrip() for line in lines]


class CallbackModule(CallbackBase):  # type: ignore[misc]
    """Collects the stack role's release reports and failures; prints them at the end.

    Results are typed Any: their classes differ between the ansible-core versions
    the collection supports (meta/runtime.yml); only _result, _host and _task are read.
    """

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "algotrade.deploy.rollout_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._plan: dict[str, Any] | None = None
        self._reports: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, str] = {}

    def v2_runner_on_ok(self, result: Any) -> None:  # noqa: ANN401
        facts = result._result.get("ansible_facts") or {}
        if PLAN in facts:
            self._plan = dict(facts[PLAN])
        if REPORT in facts:
            self._reports[result._host.get_name()] = dict(facts[REPORT])

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:  # noqa: ANN401
        if not ignore_errors:
            # The last failure is the one that failed the host (a rescued one comes before it).
            self._failures[result._host.get_name()] = result._task.get_name().split(" | ", 1)[-1]

    def v2_runner_on_unreachable(self, result: Any) -> None:  # noqa: ANN401
        self._failures[result._host.get_name()] = "unreachable"

    def v2_playbook_on_stats(self, stats: Any) -> None:  # noqa: ANN401
        # Nothing to say for a run that deployed nothing (a refused preflight, the preflight playbook).
        if self._plan is None or not (self._reports or self._failures):
            return
        self._display.banner("ROLLOUT SUMMARY")
        for line in summary_lines(self._plan, self._reports, self._failures):
            self._display.display(line)
