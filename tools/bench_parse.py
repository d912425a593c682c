"""Parsers for the deploy benchmark (tools/bench.py): profile_tasks, polls, docker history."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A profile_tasks summary line: the task name, a run of dashes, the seconds.
_TASK_LINE = re.compile(r"^(?P<name>.+?) -*\s*(?P<seconds>\d+\.\d+)s$")
BUILD_TASK = "build | Build the application image"
WAIT_TASK = "build | Wait for the build"


@dataclass(frozen=True)
class TaskTime:
    name: str
    seconds: float


def task_times(stdout: str) -> list[TaskTime]:
    """The TASKS RECAP of ansible.posix.profile_tasks, longest first (all tasks when the
    callback runs with PROFILE_TASKS_TASK_OUTPUT_LIMIT=all)."""
    lines = stdout.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("TASKS RECAP"))
    except StopIteration:
        raise ValueError("no TASKS RECAP in the output: is ansible.posix.profile_tasks enabled?") from None
    times = []
    # The recap: a banner, the clock line, a line of '=' and then one line per task.
    for line in lines[start + 3 :]:
        match = _TASK_LINE.match(line.rstrip())
        if match:
            times.append(TaskTime(match["name"].strip(), float(match["seconds"])))
    if not times:
        raise ValueError("the TASKS RECAP lists no task")
    return sorted(times, key=lambda t: t.seconds, reverse=True)


# A task's banner, then profile_tasks' line: the date, the previous task's time, the
# run's time so far (when this task starts), then its first result line.
_BANNER = re.compile(
    r"^TASK \[(?P<name>.*)\][ *]*\n.*\(\d+:\d\d:[\d.]+\)\s+(?P<h>\d+):(?P<m>\d\d):(?P<s>[\d.]+)[ *]*\n"
    r"(?:(?P<status>\w+):)?",
    re.MULTILINE,
)


@dataclass(frozen=True)
class TaskStart:
    name: str
    at: float
    status: str


def task_starts(stdout: str) -> list[TaskStart]:
    """Each task in the order it ran: when it started (seconds into the run, from
    profile_tasks' banner line) and its first result (ok, changed, skipping...)."""
    return [
        TaskStart(m["name"], int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"]), m["status"] or "")
        for m in _BANNER.finditer(stdout)
    ]


def build_seconds(stdout: str) -> float:
    """Seconds of the image role's builds (the Rust build and the image): from the build
    task's start until the run had the image. A build that ran in the background (the
    release written meanwhile) ends where its wait ends, when the run waited for it;
    otherwise with the build task."""
    tasks = task_starts(stdout)
    total, found = 0.0, False
    for i, task in enumerate(tasks):
        if BUILD_TASK not in task.name or task.status not in ("ok", "changed") or i + 1 == len(tasks):
            continue
        found, end = True, tasks[i + 1].at
        for j in range(i + 1, len(tasks) - 1):
            if BUILD_TASK in tasks[j].name and tasks[j].status in ("ok", "changed"):
                break
            if WAIT_TASK in tasks[j].name and tasks[j].status == "ok":
                end = tasks[j + 1].at
                break
        total += end - task.at
    if not found:
        raise ValueError(f"no task named like {BUILD_TASK!r} ran in the output")
    return total


def phase_of(task: str) -> str:
    """`stack : build | Render ...` -> `stack : build`; tasks.main's includes are `role : main`."""
    role, _sep, rest = task.rpartition(" : ")
    if not role:
        return task.split(" | ", 1)[0]
    return f"{role} : {rest.split(' | ', 1)[0] if ' | ' in rest else 'main'}"


def phases(times: list[TaskTime]) -> list[TaskTime]:
    """Task times summed by role and task file, longest first."""
    sums: dict[str, float] = {}
    for t in times:
        sums[phase_of(t.name)] = sums.get(phase_of(t.name), 0.0) + t.seconds
    return sorted((TaskTime(k, v) for k, v in sums.items()), key=lambda t: t.seconds, reverse=True)


@dataclass(frozen=True)
class Poll:
    at: float
    ok: bool
    version: str


@dataclass(frozen=True)
class Downtime:
    polls: int
    failures: int
    outages: list[float]
    mean_interval: float
    first_version: str
    last_version: str

    @property
    def total(self) -> float:
        return sum(self.outages)

    @property
    def longest(self) -> float:
        return max(self.outages, default=0.0)


def parse_polls(text: str) -> list[Poll]:
    """The poller's lines: `<unix time> <1|0> <X-Algo-Trade-Version or ->`."""
    polls = []
    for line in text.splitlines():
        at, ok, version = line.split(" ", 2)
        polls.append(Poll(float(at), ok == "1", version.strip()))
    return polls


def downtime(polls: list[Poll]) -> Downtime:
    """Each outage lasts from its first failed poll to the next answered one."""
    if len(polls) < 2 or not polls[0].ok:
        raise ValueError("the poller did not see the API up before the redeploy")
    if not polls[-1].ok:
        raise ValueError("the API was still down when the poller stopped")
    outages = []
    down_since: float | None = None
    for poll in polls:
        if not poll.ok and down_since is None:
            down_since = poll.at
        elif poll.ok and down_since is not None:
            outages.append(poll.at - down_since)
            down_since = None
    return Downtime(
        polls=len(polls),
        failures=sum(not p.ok for p in polls),
        outages=outages,
        mean_interval=(polls[-1].at - polls[0].at) / (len(polls) - 1),
        first_version=polls[0].version,
        last_version=polls[-1].version,
    )


@dataclass(frozen=True)
class Layer:
    size: int
    created_by: str


def history(text: str) -> list[Layer]:
    """`docker history --no-trunc --human=false --format '{{.Size}}\\t{{.CreatedBy}}'`, newest first."""
    layers = []
    for line in text.splitlines():
        size, _sep, created_by = line.partition("\t")
        layers.append(Layer(int(size), " ".join(created_by.split())))
    return layers


def added_layers(image: list[Layer], base: list[Layer]) -> list[Layer]:
    """The layers an image adds on top of its base (both newest first)."""
    added = len(image) - len(base)
    if added < 0 or image[added:] != base:
        raise ValueError("the image's history does not end with its base image's history")
    return image[:added]
