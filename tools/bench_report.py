"""docs/benchmarks.md from one run of the deploy benchmark (tools/bench.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bench_parse import Downtime, Layer, TaskTime, phases

TOP_TASKS = 12
# The targets: (no-op / cold, change redeploy / cold, downtime s, 3-host / 1-host no-op).
TARGET_NOOP = 0.05
TARGET_CHANGE = 0.30
TARGET_DOWNTIME = 10.0
TARGET_THREE = 1.2
# Issue 14: a one-line change's redeploy / the cold deploy, per build strategy.
TARGET_STRATEGY_CHANGE = 0.15
# Issue 17: a one-line change over a fleet with build once / the same change on one host.
TARGET_BUILD_ONCE = 1.3
# The last section of docs/benchmarks.md is measured by hand (a whole `make test`, which
# make bench does not run); a new report keeps it as it was.
SUITE_SECTION = "## The test suite's time"


@dataclass
class Machine:
    cpu: str
    cpus: int
    memory_gib: float
    kernel: str
    docker: str
    ansible: str
    date: str
    commit: str
    uptime_before: str
    others_before: int
    uptime_after: str = ""
    others_after: int = 0
    host_docker: str = ""


class _Run(Protocol):
    label: str
    seconds: float
    load_before: str
    load_after: str
    cpu: float
    host_cpu: float

    # A docstring, not `...`, as each body: ruff's formatter puts `...` on the def's line,
    # which ansible-test 2.17's pep8 refuses (E704).
    @property
    def changed(self) -> int:
        """Tasks changed."""

    @property
    def tasks(self) -> int:
        """Task results on the hosts."""

    @property
    def skipped(self) -> int:
        """Tasks skipped."""


@dataclass(frozen=True)
class Measure:
    seconds: float
    changed: int
    load_before: str
    load_after: str
    cpu: float = 0.0
    # Task results on every host of the run (ok, changed, failed), and the skipped ones.
    tasks: int = 0
    skipped: int = 0
    # CPU seconds the run's hosts used (their cgroups: the test hosts share the machine's cores).
    host_cpu: float = 0.0

    @classmethod
    def of(cls, run: _Run) -> Measure:
        return cls(
            run.seconds,
            run.changed,
            run.load_before,
            run.load_after,
            run.cpu,
            run.tasks,
            run.skipped,
            run.host_cpu,
        )


@dataclass(frozen=True)
class Strategy:
    """One build strategy on its own fresh host: the cold deploy, then a one-line change."""

    name: str
    cold: Measure
    cold_build: float
    change: Measure
    change_build: float


@dataclass(frozen=True)
class BuildOnce:
    """A one-line change on one host, then the next ones on three with build once."""

    one_host: Measure
    archive: Measure
    registry_first: Measure
    registry: Measure


@dataclass
class Report:
    machine: Machine
    cold: Measure
    cold_build: float
    cold_times: list[TaskTime]
    noop: Measure
    noop_times: list[TaskTime]
    change: Measure
    change_build: float
    change_times: list[TaskTime]
    polls: Downtime
    image: str
    runtime: str
    layers: list[Layer]
    base_size: int
    cold_third: Measure | None
    noop_one: Measure | None
    noop_three: Measure | None
    noop_three_times: list[TaskTime]
    fleet_error: str = ""
    default_strategy: str = "cache-mounts"
    # The other strategy, on the second host (None with --one-host or when it failed).
    other_strategy: Strategy | None = None
    # Step 7 (None with --one-host or when it failed: then build_once_error says why).
    build_once: BuildOnce | None = None
    build_once_error: str = ""


def _s(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    whole = round(seconds)  # 179.6 s is 3 min 00 s, not 2 min 60 s
    return f"{whole} s ({whole // 60} min {whole % 60:02d} s)"


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "**missed**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _tasks(times: list[TaskTime], limit: int = TOP_TASKS) -> list[str]:
    rows = ["| task | seconds |", "| --- | ---: |"]
    rows += [f"| {_cell(t.name)} | {t.seconds:.1f} |" for t in times[:limit]]
    return rows


def _results(r: Report) -> list[str]:
    noop, change = r.noop.seconds / r.cold.seconds, r.change.seconds / r.cold.seconds
    d = r.polls
    rows = [
        "| measure | result | target | |",
        "| --- | --- | --- | --- |",
        f"| Cold deploy of `playbooks/site.yml`, fresh host | {_s(r.cold.seconds)} | | |",
        f"| of which the image build (Rust build and image) | {_s(r.cold_build)} | | |",
        f"| No-op re-run (changed=0) | {_s(r.noop.seconds)} = {noop:.1%} of cold | <= 5% "
        f"| {_verdict(noop, TARGET_NOOP)} |",
        f"| Tasks that no-op ran on the host | {r.noop.tasks} ({r.noop.skipped} more skipped) | | |",
        f"| Redeploy after a one-line change (changed={r.change.changed}) | {_s(r.change.seconds)} = "
        f"{change:.1%} of cold | <= 30% | {_verdict(change, TARGET_CHANGE)} |",
        f"| of which the image build, from its start until the run had it | {_s(r.change_build)} "
        f"({r.change_build / r.cold_build:.0%} of the cold build) | | |",
        # What a change costs outside its build: the floor of the change / cold ratio.
        f"| of which the rest, outside the build (the release is written while it runs) | "
        f"{_s(r.change.seconds - r.change_build)} = "
        f"{(r.change.seconds - r.change_build) / r.cold.seconds:.1%} of cold | | |",
        f"| API downtime during that redeploy | {d.total:.1f} s ({len(d.outages)} outage(s), longest "
        f"{d.longest:.1f} s) | <= 10 s | {_verdict(d.total, TARGET_DOWNTIME)} |",
    ]
    if r.noop_one and r.noop_three:
        three = r.noop_three.seconds / r.noop_one.seconds
        rows.append(
            f"| No-op over three hosts (changed=0) | {_s(r.noop_three.seconds)} = {three:.2f}x one host "
            f"({_s(r.noop_one.seconds)}, measured just before) | <= 1.2x | {_verdict(three, TARGET_THREE)} |"
        )
        # The hosts are containers on the controller's machine: the run cannot take less
        # than the CPU it needs spread over every core.
        cores, m = r.machine.cpus, r.noop_three
        floor = (m.cpu + m.host_cpu) / cores
        rows.append(
            f"| of which the CPU alone needs, on {cores} cores shared by controller and hosts | "
            f"({m.cpu:.1f} s controller + {m.host_cpu:.1f} s hosts) / {cores} = "
            f"{_s(floor)} = {floor / r.noop_one.seconds:.2f}x one host | | |"
        )
    elif r.fleet_error:
        rows.append(f"| No-op over three hosts | **failed**: {_cell(r.fleet_error)} | <= 1.2x | |")
    else:
        rows.append("| No-op over three hosts | not measured (`--one-host`) | <= 1.2x | |")
    if r.cold_third:
        rows.append(
            f"| Cold deploy of a third host, `{r.default_strategy}`, warm compiler cache (extra) "
            f"| {_s(r.cold_third.seconds)} | | |"
        )
    rows.append(
        f"| Layers the Dockerfile adds over its runtime base | {_mb(sum(x.size for x in r.layers))} "
        f"in {len(r.layers)} layer(s) (base {_mb(r.base_size)}) | | |"
    )
    return rows


def _strategies(r: Report) -> list[str]:
    measured = [Strategy(r.default_strategy, r.cold, r.cold_build, r.change, r.change_build)]
    measured += [r.other_strategy] if r.other_strategy else []
    rows = [
        "| `stack_build_strategy` | cold deploy | of which the build | one-line change | of which the build "
        "| change / cold | target | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for m in measured:
        ratio = m.change.seconds / m.cold.seconds
        default = " (default)" if m.name == r.default_strategy else ""
        rows.append(
            f"| `{m.name}`{default} | {_s(m.cold.seconds)} | {_s(m.cold_build)} | {_s(m.change.seconds)} "
            f"| {_s(m.change_build)} | {ratio:.1%} | <= 15% | {_verdict(ratio, TARGET_STRATEGY_CHANGE)} |"
        )
    if not r.other_strategy:
        rows.append("| the other strategy | not measured | | | | | | |")
    return rows


def _build_once(r: Report) -> list[str]:
    if not r.build_once:
        return [
            f"**Failed**: {_cell(r.build_once_error)}"
            if r.build_once_error
            else "Not measured (`--one-host`)."
        ]
    b = r.build_once
    rows = [
        "| one-line change | seconds | x one host | target | |",
        "| --- | ---: | ---: | --- | --- |",
        f"| on one host (`stack_build_mode: each`) | {_s(b.one_host.seconds)} | 1.00x | | |",
    ]
    for name, m, target in (
        ("on three, build once, the image as an archive through the controller", b.archive, True),
        ("on three, build once, through the registry, first time (every layer pushed and pulled)",
         b.registry_first, False),
        ("on three, build once, through the registry", b.registry, True),
    ):  # fmt: skip
        ratio = m.seconds / b.one_host.seconds
        target_cell, verdict = ("<= 1.3x", _verdict(ratio, TARGET_BUILD_ONCE)) if target else ("", "")
        rows.append(f"| {name} | {_s(m.seconds)} | {ratio:.2f}x | {target_cell} | {verdict} |")
    return rows


def _machine(m: Machine) -> list[str]:
    return [
        "| | |",
        "| --- | --- |",
        f"| CPU | {m.cpu}, {m.cpus} usable |",
        f"| Memory | {m.memory_gib:.1f} GiB |",
        f"| Kernel | {m.kernel} |",
        f"| Docker | engine {m.docker} on the machine; {m.host_docker} inside the test hosts |",
        f"| Ansible | {m.ansible} |",
        f"| Date | {m.date} |",
        f"| Commit | `{m.commit}` |",
        f"| `uptime` before | `{m.uptime_before}` ({m.others_before} other containers running) |",
        f"| `uptime` after | `{m.uptime_after}` ({m.others_after} other containers running) |",
    ]


def _loads(r: Report) -> list[str]:
    named = [
        ("cold deploy", r.cold),
        ("no-op", r.noop),
        ("one-line change", r.change),
        *(
            [
                (f"{r.other_strategy.name}: cold deploy", r.other_strategy.cold),
                (f"{r.other_strategy.name}: one-line change", r.other_strategy.change),
            ]
            if r.other_strategy
            else []
        ),
        ("cold deploy of a third host", r.cold_third),
        ("no-op one host (before three)", r.noop_one),
        ("no-op three hosts", r.noop_three),
        *(
            [
                ("build once: one-line change one host", r.build_once.one_host),
                ("build once: three hosts, archive", r.build_once.archive),
                ("build once: three hosts, registry, first", r.build_once.registry_first),
                ("build once: three hosts, registry", r.build_once.registry),
            ]
            if r.build_once
            else []
        ),
    ]
    rows = [
        "| run | seconds | controller CPU seconds | hosts' CPU seconds | load average before | after |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    rows += [
        f"| {name} | {m.seconds:.1f} | {m.cpu:.1f} | {m.host_cpu:.1f} | {m.load_before} | {m.load_after} |"
        for name, m in named
        if m is not None
    ]
    return rows


def _sharing(m: Machine) -> list[str]:
    if m.others_before or m.others_after:
        return [
            "The machine is shared: other engineers' Molecule scenarios ran at the same time, so",
            "absolute times, the Rust builds above all, depend on the load (below, per run).",
        ]
    return [
        "No other container ran on the machine before or after; absolute times, the Rust",
        "builds above all, still depend on the load (below, per run).",
    ]


def render(r: Report) -> str:
    d = r.polls
    out = [
        "# Deploy benchmark",
        "",
        f"<!-- Generated by `make bench` (tools/bench.py) on {r.machine.date}; do not edit by hand. -->",
        "",
        "Generated by `make bench` (`tools/bench.py`): one run on the local test bed, a throwaway",
        "Debian 13 systemd container per host (as the Molecule scenarios use) with no Docker",
        "installed; `playbooks/site.yml` with `inventories/demo`'s variables (the test bed's images",
        "side-loaded from `.cache/images/*.tar`, the sample app built on the host). Times are wall",
        "clock of `ansible-playbook`; task times come from `ansible.posix.profile_tasks`.",
        "",
        "## Machine",
        "",
        *_machine(r.machine),
        "",
        *_sharing(r.machine),
        "",
        "## Results",
        "",
        *_results(r),
        "",
        "## Build strategies",
        "",
        "Each strategy on a fresh host of its own: a cold deploy, then the one-line change below.",
        "Both build from the test bed's builder image without the compiler cache it carries for",
        "the scenarios' sake (docs/testing.md), as an operator's first build on a host does: a",
        "cold build compiles every dependency (their archives are in the image: none is",
        "downloaded). The third host builds with that cache, as the scenarios do.",
        "",
        *_strategies(r),
        "",
        "## Build once over three hosts",
        "",
        "A one-line change deployed to the first host alone, then each of the next ones to all",
        "three with `stack_build_mode: once` (the first host builds, the other two run its image):",
        "the image shipped as an archive through the controller, then through a private registry",
        "(Debian's `docker-registry` on the bench network, TLS from a CA of its own and a login).",
        "The registry's first time moves every layer (the other hosts had loaded archives, which",
        "carry no registry digests); the next change moves the changed layers only. The rollout",
        "keeps its default batches (1, 25%, 100%): on three hosts, one host after another, each",
        "started and health-gated before the next.",
        "",
        *_build_once(r),
        "",
        "## How each figure is taken",
        "",
        "- *Cold deploy*: `site.yml` on a new host: Docker Engine from Debian's mirror, the four",
        "  images copied and loaded, the source packed, the image built (BuildKit, cache mounts",
        "  empty, no compiler cache in the builder), the stack started and its health gate passed.",
        "- *No-op*: `site.yml` again, unchanged; the run fails the benchmark unless every host",
        "  reports changed=0.",
        "- *One-line change*: `pub const VERSION` in the sample app's `crates/cli/src/main.rs`",
        "  (a copy in a temporary directory) bumped, then `site.yml`. As upstream's, the sample is a",
        "  workspace whose binary's crate (`cli`: the subcommands and the TUIs) uses library crates",
        "  (`core`, `bot-orchestrator`, `web-api`, `backtest-scheduler`), which the change leaves as",
        "  they were; the build reuses what its strategy keeps on the host (`cargo-chef`: the cooked",
        "  dependencies' layer and sccache's cache mount, which also holds the unchanged libraries;",
        "  `cache-mounts`: cargo's target directory in a BuildKit cache mount, where every crate of",
        "  the workspace is compiled again: the staged source's files are new to cargo).",
        f"- *Downtime*: a Python loop on the host asks `GET {'http://127.0.0.1:8080/api/bots'}` every",
        "  100 ms (1 s timeout) from before the redeploy until after it; an outage lasts from its",
        "  first failed request to the next answered one.",
        f"  This run: {d.polls} requests, {d.failures} failed, one every {d.mean_interval * 1000:.0f} ms"
        f" on average; outages: {', '.join(f'{o:.1f} s' for o in d.outages) or 'none'}; the API",
        f"  answered as version `{d.first_version}` before and `{d.last_version}` after.",
        "- *Build strategies*: the second host deploys with the other `stack_build_strategy` and",
        "  a copy of the sample app of its own (cold, then its own one-line change).",
        "- *Three hosts*: a third fresh host deployed cold (from the builder with its warmed",
        "  compiler cache), then a no-op on the first host alone",
        "  and a no-op on all three (the first host is the one measured above).",
        f"- *Layers*: `docker history` of the running image `{r.image}` minus the history of its",
        f"  runtime base `{r.runtime}` (the test bed's stand-in for `debian:trixie-slim`).",
        "",
        "Load during each run, the CPU time the controller's side took (ansible-playbook, its",
        "workers and the docker CLI of the connection) and the CPU time the run's test hosts took",
        "(their cgroups: the host's own processes and the stack's containers in it, idle ones",
        "too). The hosts share the machine's cores with the controller:",
        "",
        *_loads(r),
        "",
        "## Where the time goes",
        "",
        "Cold deploy, by role and task file:",
        "",
        "| phase | seconds |",
        "| --- | ---: |",
        *[f"| {p.name} | {p.seconds:.1f} |" for p in phases(r.cold_times)[:TOP_TASKS]],
        "",
        "Cold deploy, longest tasks:",
        "",
        *_tasks(r.cold_times),
        "",
        "One-line change, longest tasks:",
        "",
        *_tasks(r.change_times),
        "",
        "No-op, longest tasks:",
        "",
        *_tasks(r.noop_times),
        "",
    ]
    if r.noop_three_times:
        out += ["No-op over three hosts, longest tasks:", "", *_tasks(r.noop_three_times), ""]
    out += [
        "## Layers the Dockerfile adds",
        "",
        "| size | created by |",
        "| ---: | --- |",
        *[f"| {_mb(x.size)} | `{_cell(x.created_by[:110])}` |" for x in r.layers],
        "",
    ]
    return "\n".join(out)


def keep_suite_section(report: str, previous: str) -> str:
    """The new report, ending with the previous report's test-suite section (if it had one)."""
    at = previous.find(SUITE_SECTION)
    return report if at < 0 else report.rstrip("\n") + "\n\n" + previous[at:]
