"""The deploy benchmark's parsers (tools/bench_parse.py) on recorded output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import bench_parse as bp

# A name longer than the terminal gets no dashes before its time.
LONG = (
    "algotrade.deploy.stack : build | Build the application image"
    " (BuildKit, while the old release keeps running)"
)
PROFILE = f"""\
PLAY RECAP *********************************************************************
bench-a : ok=98   changed=41   unreachable=0    failed=0    skipped=20   rescued=0    ignored=0

TASKS RECAP ********************************************************************
Thursday 27 November 2026  00:45:10 +0000 (0:00:01.234)       0:05:12.345 *****
===============================================================================
{LONG}  201.37s
algotrade.deploy.docker : install | Install the Docker packages --------- 48.02s
algotrade.deploy.stack : image_load | Copy the archive of local/rust-builder:trixie -- 20.50s
algotrade.deploy.stack : image_load | Load {{{{ __image_archive.name }}}} ----- 10.25s
algotrade.deploy.stack : Build ------------------------------------------- 0.05s
Gathering Facts ---------------------------------------------------------- 1.75s
"""


def test_task_times_reads_every_summary_line_longest_first() -> None:
    times = bp.task_times(PROFILE)
    assert [t.seconds for t in times] == [201.37, 48.02, 20.5, 10.25, 1.75, 0.05]
    assert times[0].name.endswith("(BuildKit, while the old release keeps running)")
    assert times[3].name == "algotrade.deploy.stack : image_load | Load {{ __image_archive.name }}"


def test_task_times_refuses_output_without_the_callback() -> None:
    with pytest.raises(ValueError, match="profile_tasks"):
        bp.task_times("PLAY RECAP ****\nbench-a : ok=1 changed=0\n")


def _banners(*tasks: tuple[str, float, str]) -> str:
    """A run's output with profile_tasks: each task's banner, its start, its first result."""
    return "".join(
        f"TASK [{name}] ****\nMonday 07 December 2026  15:56:46 +0000 (0:00:00.034)"
        f"       0:{int(at // 60):02d}:{at % 60:06.3f} ******* \n{status}: [bench-a]\n\n"
        for name, at, status in tasks
    )


BUILD = f"algotrade.deploy.image : {bp.BUILD_TASK} (BuildKit, while the old release keeps running)"
WAIT = "algotrade.deploy.image : build | Wait for the build"
WRITE = "algotrade.deploy.release : write | Write the services' files"
UP = "algotrade.deploy.switch : Bring the release up and wait until every service is healthy"


def test_build_seconds_ends_a_build_in_the_background_where_its_wait_ends() -> None:
    """A build waited for in place lasts its task; one left running while the release is
    written lasts until its wait ended (the finish part's build task, skipped, in between)."""
    in_place = _banners(
        (BUILD, 16.0, "changed"), (WAIT, 40.0, "skipping"), (WRITE, 41.0, "changed"), (UP, 45.0, "ok")
    )
    assert bp.build_seconds(in_place) == pytest.approx(24.0)
    background = _banners(
        (BUILD, 16.0, "changed"),
        (WAIT, 17.0, "skipping"),
        (WRITE, 18.0, "changed"),
        (BUILD, 29.0, "skipping"),
        (WAIT, 30.0, "ok"),
        (UP, 44.5, "changed"),
    )
    assert bp.build_seconds(background) == pytest.approx(28.5)
    with pytest.raises(ValueError, match="Build the application image"):
        bp.build_seconds(_banners((BUILD, 3.0, "skipping"), (UP, 4.0, "ok")))


def test_phases_sum_by_role_and_task_file() -> None:
    sums = {p.name: p.seconds for p in bp.phases(bp.task_times(PROFILE))}
    assert sums["algotrade.deploy.stack : image_load"] == pytest.approx(30.75)
    assert sums["algotrade.deploy.stack : main"] == pytest.approx(0.05)
    assert sums["Gathering Facts"] == pytest.approx(1.75)


def _polls(*rows: tuple[float, int, str]) -> str:
    return "".join(f"{at:.3f} {ok} {version}\n" for at, ok, version in rows)


def test_downtime_spans_first_failure_to_next_answer() -> None:
    text = _polls(
        (100.0, 1, "v1"),
        (100.1, 1, "v1"),
        (100.2, 0, "-"),
        (100.3, 0, "-"),
        (100.9, 1, "v2"),
        (101.0, 0, "-"),
        (101.1, 1, "v2"),
    )
    result = bp.downtime(bp.parse_polls(text))
    assert result.outages == pytest.approx([0.7, 0.1])
    assert result.total == pytest.approx(0.8)
    assert result.longest == pytest.approx(0.7)
    assert (result.polls, result.failures) == (7, 3)
    assert (result.first_version, result.last_version) == ("v1", "v2")
    assert result.mean_interval == pytest.approx(1.1 / 6)


@pytest.mark.parametrize(
    "rows",
    [
        [(1.0, 0, "-"), (1.1, 1, "v1")],  # never seen up before
        [(1.0, 1, "v1"), (1.1, 0, "-")],  # still down at the end
        [(1.0, 1, "v1")],
    ],
)
def test_downtime_refuses_polls_that_do_not_bracket_the_redeploy(rows: list[tuple[float, int, str]]) -> None:
    with pytest.raises(ValueError, match=r"API|poller"):
        bp.downtime(bp.parse_polls(_polls(*rows)))


def test_added_layers_are_the_history_above_the_base() -> None:
    base = bp.history(
        '1000\t/bin/sh -c #(nop)  CMD ["bash"]\n80000000\t/bin/sh -c #(nop) ADD file:abc in /\n'
    )
    image = bp.history(
        '0\tENTRYPOINT ["/usr/bin/tini"]\n2500000\tCOPY /out/algo-trade /usr/local/bin/algo-trade\n'
        '1000\t/bin/sh -c #(nop)  CMD ["bash"]\n80000000\t/bin/sh -c #(nop) ADD file:abc in /\n'
    )
    added = bp.added_layers(image, base)
    assert [x.size for x in added] == [0, 2500000]
    with pytest.raises(ValueError, match="base"):
        bp.added_layers(base, image)
    with pytest.raises(ValueError, match="base"):
        bp.added_layers(
            image, bp.history("5\tsomething else\n80000000\t/bin/sh -c #(nop) ADD file:abc in /\n")
        )
