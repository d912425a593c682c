"""The deploy benchmark's report (tools/bench_report.py): verdicts and the per-run table."""

from __future__ import annotations

import sys

from testlib import REPO

sys.path.insert(0, str(REPO / "tools"))

import bench_parse as bp
import bench_report
from bench_report import (
    SUITE_SECTION,
    BuildOnce,
    Machine,
    Measure,
    Report,
    Strategy,
    keep_suite_section,
    render,
)


def _report(noop: float, three: float) -> Report:
    times = [bp.TaskTime("algotrade.deploy.stack : build | Build the application image", 200.0)]
    return Report(
        machine=Machine("CPU", 2, 23.5, "6.x", "26", "core 2.19", "2026-11-27", "abc1234", "load 1", 0),
        cold=Measure(300.0, 35, "1.0", "2.0", 60.0),
        cold_build=200.0,
        cold_times=times,
        noop=Measure(noop, 0, "2.0", "2.1", 12.5, tasks=88, skipped=49),
        noop_times=times,
        change=Measure(40.0, 8, "2.1", "2.2", 20.0),
        change_build=10.0,
        change_times=times,
        polls=bp.Downtime(100, 5, [0.5], 0.1, "sample-1", "bench-2"),
        image="algo-trade/app:0123456789abcdef",
        runtime="local/app-runtime:trixie",
        layers=[bp.Layer(3_200_000, "COPY /out/algo-trade /usr/local/bin/algo-trade")],
        base_size=257_000_000,
        cold_third=Measure(600.0, 70, "2.2", "3.0", 120.0),
        noop_one=Measure(noop, 0, "3.0", "3.0", 12.5),
        noop_three=Measure(three, 0, "3.0", "3.1", 37.5, host_cpu=10.5),
        noop_three_times=times,
    )


def test_targets_met_and_missed() -> None:
    met = render(_report(noop=14.0, three=16.0))
    assert "| No-op re-run (changed=0) | 14.0 s = 4.7% of cold | <= 5% | met |" in met
    assert "= 1.14x one host" in met
    assert "**missed**" not in met
    missed = render(_report(noop=16.0, three=20.0))
    assert "5.3% of cold | <= 5% | **missed** |" in missed
    assert "1.25x one host (16.0 s, measured just before) | <= 1.2x | **missed** |" in missed


def test_tells_the_change_beside_its_build() -> None:
    """The one-line change of 40 s with a build of 10 s: 30 s of the cold deploy's 300 s."""
    text = render(_report(noop=14.0, three=16.0))
    rest = "| of which the rest, outside the build (the release is written while it runs) |"
    assert f"{rest} 30.0 s = 10.0% of cold | | |" in text


def test_counts_the_tasks_of_the_no_op() -> None:
    text = render(_report(noop=14.0, three=16.0))
    assert "| Tasks that no-op ran on the host | 88 (49 more skipped) | | |" in text


def test_each_run_shows_the_controller_and_hosts_cpu() -> None:
    text = render(_report(noop=29.0, three=40.0))
    assert (
        "| run | seconds | controller CPU seconds | hosts' CPU seconds | load average before | after |"
        in text
    )
    assert "| no-op three hosts | 40.0 | 37.5 | 10.5 | 3.0 | 3.1 |" in text


def test_the_three_host_no_op_states_its_cpu_floor() -> None:
    """(37.5 + 10.5) CPU seconds over the machine's 2 cores: 24 s at the least, 0.83x the
    one-host run of 29 s."""
    text = render(_report(noop=29.0, three=40.0))
    assert (
        "| of which the CPU alone needs, on 2 cores shared by controller and hosts | "
        "(37.5 s controller + 10.5 s hosts) / 2 = 24.0 s = 0.83x one host | | |"
    ) in text


def test_says_whether_the_machine_was_shared() -> None:
    report = _report(noop=29.0, three=40.0)
    assert "No other container ran on the machine" in render(report)
    report.machine.others_after = 3
    assert "The machine is shared" in render(report)


def test_compares_the_build_strategies_against_the_target() -> None:
    report = _report(noop=14.0, three=16.0)
    text = render(report)
    assert (
        "| `cache-mounts` (default) | 300 s (5 min 00 s) | 200 s (3 min 20 s) | 40.0 s | 10.0 s | 13.3% "
        in text
    )
    assert "| 13.3% | <= 15% | met |" in text
    assert "| the other strategy | not measured |" in text
    report.other_strategy = Strategy(
        "cargo-chef", Measure(400.0, 35, "1", "2"), 250.0, Measure(80.0, 8, "2", "2"), 8.0
    )
    text = render(report)
    assert (
        "| `cargo-chef` | 400 s (6 min 40 s) | 250 s (4 min 10 s) | 80.0 s | 8.0 s "
        "| 20.0% | <= 15% | **missed** |" in text
    )
    assert "| cargo-chef: one-line change | 80.0 |" in text


def test_a_new_report_keeps_the_test_suite_section_measured_by_hand() -> None:
    suite = f"{SUITE_SECTION}\n\n| lane | step | time |\n| --- | --- | --- |\n| all | make test | 59 min |\n"
    previous = "# Deploy benchmark\n\nold figures\n\n" + suite
    kept = keep_suite_section("# Deploy benchmark\n\nnew figures\n", previous)
    assert kept == "# Deploy benchmark\n\nnew figures\n\n" + suite
    assert keep_suite_section("# Deploy benchmark\n", "") == "# Deploy benchmark\n"


def test_the_committed_report_has_the_test_suite_section() -> None:
    assert SUITE_SECTION in (REPO / "docs" / "benchmarks.md").read_text()


def test_build_once_over_three_hosts_against_one_host() -> None:
    """Each way of shipping against the one-host change; the registry's first time (every
    layer moved) is shown without a target."""
    report = _report(noop=14.0, three=16.0)
    assert "Not measured (`--one-host`)." in render(report)
    report.build_once = BuildOnce(
        one_host=Measure(50.0, 19, "1.0", "1.1"),
        archive=Measure(80.0, 40, "1.1", "1.2"),
        registry_first=Measure(90.0, 45, "1.2", "1.3"),
        registry=Measure(60.0, 45, "1.3", "1.4"),
    )
    text = render(report)
    assert "| on one host (`stack_build_mode: each`) | 50.0 s | 1.00x | | |" in text
    assert (
        "| on three, build once, the image as an archive through the controller | 80.0 s | 1.60x | <= 1.3x "
        "| **missed** |" in text
    )
    assert "first time (every layer pushed and pulled) | 90 s (1 min 30 s) | 1.80x |  |  |" in text
    assert "| on three, build once, through the registry | 60.0 s | 1.20x | <= 1.3x | met |" in text
    assert "| build once: three hosts, registry | 60.0 | 0.0 | 0.0 | 1.3 | 1.4 |" in text
    report.build_once, report.build_once_error = None, "one-line change three hosts archive failed (exit 2)"
    assert "**Failed**: one-line change three hosts archive failed (exit 2)" in render(report)


def test_minutes_carry_a_rounded_minute() -> None:
    """Seen to fail before: 179.6 s was printed as 180 s (2 min 60 s)."""
    assert bench_report._s(179.6) == "180 s (3 min 00 s)"
    assert bench_report._s(95.4) == "95 s (1 min 35 s)"
