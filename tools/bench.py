"""Deploy benchmark on the local test bed; writes docs/benchmarks.md (`make bench`).

Usage: python tools/bench.py [--output FILE] [--one-host]

In one run, on throwaway test bed hosts bench-a, bench-b, bench-c (network
molecule-bench; removed at the end, also on failure or Ctrl-C), each with its own copy of
the sample app:
  1. cold deploy of playbooks/site.yml on bench-a (no Docker yet, images side-loaded
     from .cache/images as inventories/demo does), with the build task's time; bench-a
     and bench-b build from the test bed's builder without its warmed compiler cache
     (COLD_BUILDER), as an operator's first build does: every dependency compiles;
  2. a no-op re-run on bench-a (changed=0, or the benchmark fails);
  3. a redeploy after a one-line change to bench-a's copy, while a poller on bench-a
     asks the API every 100 ms;
  4. the size of the layers the Dockerfile adds over the runtime base image;
  5. bench-b with the other build strategy (stack_build_strategy): a cold deploy, then
     a one-line change to its copy;
  6. bench-c deployed cold, then a no-op on bench-a alone and a no-op on all three (each
     changed=0);
  7. build once over the three hosts: a one-line change on bench-a alone, then the next
     one-line change on all three with stack_build_mode=once (bench-a builds), shipped as
     an archive through the controller, then twice through a registry (Debian's
     docker-registry on the bench network, TLS and a login: molecule/resources/registry.yml),
     the first push and pulls moving every layer, the second only the changed ones.
--one-host skips steps 5 to 7 (for debugging the tool; the report says so).
Every ansible-playbook output is kept in .cache/bench/<time>/.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import bench_parse as bp
from bench_report import BuildOnce, Machine, Measure, Report, Strategy, keep_suite_section, render
from testlib import REPO, ansible_playbook, recap, remove_hosts, throwaway_hosts

HOSTS = ["bench-a", "bench-b", "bench-c"]
SCENARIO = "bench"  # network molecule-bench
DEMO = REPO / "inventories" / "demo"
SITE = REPO / "playbooks" / "site.yml"
# The runtime base image of the app in the demo inventory (debian:trixie-slim's stand-in).
RUNTIME = yaml.safe_load((DEMO / "group_vars" / "all" / "vars.yml").read_text())["stack_runtime_image"]
STRATEGIES = ["cache-mounts", "cargo-chef"]
DEFAULT_STRATEGY = yaml.safe_load((REPO / "roles" / "stack" / "defaults" / "main.yml").read_text())[
    "stack_build_strategy"
]
OTHER_STRATEGY = next(s for s in STRATEGIES if s != DEFAULT_STRATEGY)
VAULT_ID = f"demo@{DEMO / 'demo-vault-password.txt'}"
WARM_BUILDER = "local/rust-builder:trixie"
# The test bed's builder without the compiler cache it carries for the scenarios' sake.
COLD_BUILDER = "local/rust-builder:bench-cold"
COLD_HOSTS = ["bench-a", "bench-b"]
API = "http://127.0.0.1:8080/api/bots"
NEW_VERSION = "bench-2"
# Build once's registry (molecule/resources/registry.yml names it after the scenario).
REGISTRY_HOST = f"{SCENARIO}-registry"
REGISTRY = f"{REGISTRY_HOST}:5000"
REGISTRY_LOGIN = {"registry_user": "bench", "registry_password": "bench-registry-pw-3f9c0a17e2"}
# On the bench host (a throwaway container), not on this machine.
POLL_FILE = "/var/tmp/bench-api-polls.txt"  # noqa: S108
POLL_STOP = "/var/tmp/bench-api-polls.stop"  # noqa: S108
# Runs on the host: one request every 100 ms, one line per request.
POLLER = """
import os, sys, time, urllib.request
url, out, stop = sys.argv[1:4]
with open(out, "w") as f:
    due = time.monotonic()
    while not os.path.exists(stop):
        at = time.time()
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                ok, version = r.status == 200, r.headers.get("X-Algo-Trade-Version") or "-"
        except Exception:
            ok, version = False, "-"
        f.write(f"{at:.3f} {int(ok)} {version}\\n")
        f.flush()
        due = max(due + 0.1, time.monotonic())
        time.sleep(max(0.0, due - time.monotonic()))
"""


class BenchError(Exception):
    """A measurement that cannot be trusted: the benchmark stops."""


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {message}", file=sys.stderr, flush=True)


def sh(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)!r} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout.strip()


def on_host(host: str, command: str) -> str:
    return sh("docker", "exec", host, "sh", "-c", command)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Run:
    label: str
    seconds: float
    times: list[bp.TaskTime]
    recaps: dict[str, dict[str, int]]
    load_before: str
    load_after: str
    cpu: float
    host_cpu: float
    stdout: str

    @property
    def changed(self) -> int:
        return sum(r.get("changed", 0) for r in self.recaps.values())

    @property
    def tasks(self) -> int:
        return sum(r.get("ok", 0) + r.get("failed", 0) for r in self.recaps.values())

    @property
    def skipped(self) -> int:
        return sum(r.get("skipped", 0) for r in self.recaps.values())


def controller_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: ansible-playbook,
    its workers and the docker CLI calls of the connection plugin."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cgroup_cpu(container: str) -> float:
    """CPU seconds a test host's cgroup has used so far: the host's own processes and the
    stack's containers inside it (its engine's cgroups are below the host's). cgroup v2,
    or the unified hierarchy of a hybrid v1 machine."""
    pid, cid = sh("docker", "inspect", "-f", "{{.State.Pid}} {{.Id}}", container).split()
    # The host's systemd moves itself to a cgroup below the container's (init.scope): the
    # container's own is the one its ID names (/docker/ID, /system.slice/docker-ID.scope).
    own = next(
        line.split("::", 1)[1]
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if line.startswith("0::")
    ).split("/")
    path = "/".join(own[: next(i for i, part in enumerate(own) if cid in part) + 1])
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        stat = root / path.lstrip("/") / "cpu.stat"
        if stat.exists():
            usage = next(line for line in stat.read_text().splitlines() if line.startswith("usage_usec "))
            return int(usage.split()[1]) / 1e6
    raise BenchError(f"no cgroup cpu.stat for {container} ({path})")


def hosts_cpu(hosts: list[str]) -> float:
    return sum(cgroup_cpu(h) for h in hosts)


@dataclass
class Bench:
    inventory: Path
    logs: Path
    runs: list[Run] = field(default_factory=list)

    def deploy(
        self,
        label: str,
        hosts: list[str],
        expect_no_change: bool = False,
        extra: dict[str, str] | None = None,
    ) -> Run:
        """One timed site.yml run with profile_tasks; its output goes to the log directory."""
        log(f"{label}: site.yml on {', '.join(hosts)}")
        before = loadavg()
        cpu_before, hosts_before = controller_cpu(), hosts_cpu(hosts)
        start = time.monotonic()
        result = ansible_playbook(
            SITE,
            self.inventory,
            "--vault-id",
            VAULT_ID,
            "--limit",
            ",".join(hosts),
            extra_vars={"demo_root": str(REPO), **(extra or {})},
            env={
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
            },
        )
        seconds = time.monotonic() - start
        cpu, host_cpu = controller_cpu() - cpu_before, hosts_cpu(hosts) - hosts_before
        logfile = self.logs / f"{len(self.runs) + 1:02d}-{label.replace(' ', '-')}.log"
        logfile.write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise BenchError(f"{label} failed (exit {result.returncode}); see {logfile}")
        run = Run(
            label,
            seconds,
            bp.task_times(result.stdout),
            {h: recap(result, h) for h in hosts},
            before,
            loadavg(),
            cpu,
            host_cpu,
            result.stdout,
        )
        if expect_no_change and run.changed:
            changed = {h: r["changed"] for h, r in run.recaps.items() if r["changed"]}
            raise BenchError(f"{label} was not a no-op: changed={changed}; see {logfile}")
        self.runs.append(run)
        log(f"{label}: {seconds:.1f} s, changed={run.changed}")
        return run


def cold_builder_archive(workdir: Path) -> Path:
    """COLD_BUILDER, made from the warm one and saved for side-loading."""
    recipe = f"FROM {WARM_BUILDER}\nRUN rm -rf /sccache && mkdir -m 0777 /sccache\n"
    subprocess.run(["docker", "build", "-q", "-t", COLD_BUILDER, "-"], input=recipe, text=True, check=True)
    archive = workdir / "rust-builder-cold.tar"
    sh("docker", "save", "-o", str(archive), COLD_BUILDER)
    return archive


def write_inventory(workdir: Path, apps: dict[str, Path], cold_builder: Path) -> Path:
    """The bench hosts with the demo inventory's variables and vault, each with its own copy
    of the sample app; bench-b builds with the other strategy; COLD_HOSTS from COLD_BUILDER;
    every host with the registry's login and CA (used when a run sets stack_build_registry)."""
    inventory = workdir / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "all").symlink_to(DEMO / "group_vars" / "all")
    registry = {
        "stack_build_registry_username": REGISTRY_LOGIN["registry_user"],
        "stack_build_registry_password": REGISTRY_LOGIN["registry_password"],
        "stack_build_registry_ca_file": str(workdir / "registry" / "ca.crt"),
    }
    hosts: dict[str, dict[str, object]] = {
        h: {"ansible_connection": "community.docker.docker", "stack_source_dir": str(apps[h]), **registry}
        for h in HOSTS
    }
    hosts["bench-b"]["stack_build_strategy"] = OTHER_STRATEGY
    images = REPO / ".cache" / "images"
    archives = [
        {"name": f"local/{name}:trixie", "archive": str(images / f"{name}.tar")}
        for name in ("app-runtime", "timescaledb", "nginx")
    ]
    for h in COLD_HOSTS:
        hosts[h]["stack_builder_image"] = COLD_BUILDER
        hosts[h]["stack_image_archives"] = [{"name": COLD_BUILDER, "archive": str(cold_builder)}, *archives]
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return inventory


def bump_version(app: Path, version: str = NEW_VERSION) -> None:
    """The one-line change: a new `pub const VERSION` in the sample app's CLI crate."""
    main = app / "crates" / "cli" / "src" / "main.rs"
    lines = main.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith("pub const VERSION"))
    lines[index] = f'pub const VERSION: &str = "{version}";\n'
    main.write_text("".join(lines))


def start_poller(host: str) -> None:
    on_host(host, f"rm -f {POLL_FILE} {POLL_STOP}")
    sh("docker", "exec", "-d", host, "python3", "-c", POLLER, API, POLL_FILE, POLL_STOP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if " 1 " in on_host(host, f"cat {POLL_FILE} 2>/dev/null || true"):
            return
    raise BenchError(f"the poller on {host} never saw the API answer on {API}")


def stop_poller(host: str) -> bp.Downtime:
    deployed = time.time()
    time.sleep(2)  # a few answered polls after the redeploy
    on_host(host, f"touch {POLL_STOP}")
    time.sleep(1.5)
    polls = bp.parse_polls(on_host(host, f"cat {POLL_FILE}"))
    # The container shares this machine's clock: a poller that died early shows here.
    if not polls or polls[-1].at < deployed:
        raise BenchError(f"the poller on {host} stopped before the redeploy ended")
    try:
        return bp.downtime(polls)
    except ValueError as error:
        raise BenchError(f"API polls on {host}: {error}") from None


def app_layers(host: str) -> tuple[str, str, list[bp.Layer], int]:
    """The running app image, its runtime base, the layers the Dockerfile adds, the base's size."""
    image = on_host(host, "docker inspect -f '{{.Config.Image}}' algo-trade-app-1")
    fmt = "--no-trunc --human=false --format '{{.Size}}\t{{.CreatedBy}}'"
    try:
        added = bp.added_layers(
            bp.history(on_host(host, f"docker history {fmt} {image}")),
            bp.history(on_host(host, f"docker history {fmt} {RUNTIME}")),
        )
    except ValueError as error:
        raise BenchError(f"{image} over {RUNTIME}: {error}") from None
    base_size = int(on_host(host, "docker image inspect -f '{{.Size}}' " + RUNTIME))
    return image, RUNTIME, added, base_size


def machine() -> Machine:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    )
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"], check=False).returncode != 0
    return Machine(
        cpu=cpu,
        cpus=len(os.sched_getaffinity(0)),
        memory_gib=mem_kib / 1024 / 1024,
        kernel=f"{platform.system()} {platform.release()}",
        docker=sh("docker", "version", "--format", "{{.Server.Version}}"),
        ansible=sh("ansible", "--version").splitlines()[0],
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD") + ("-dirty" if dirty else ""),
        uptime_before=sh("uptime").strip(),
        others_before=other_containers(),
    )


def start_registry(workdir: Path) -> None:
    """The test bed's registry on the bench network (removed with the hosts: destroy.yml)."""
    login = workdir / "registry-login.yml"
    login.write_text(yaml.safe_dump({**REGISTRY_LOGIN, "registry_dir": str(workdir / "registry")}))
    login.chmod(0o600)
    inventory = workdir / "localhost-only.yml"  # registry.yml runs on the implicit localhost
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {}}}))
    result = ansible_playbook(
        REPO / "molecule" / "resources" / "registry.yml",
        inventory,
        "-e",
        f"@{login}",
        env={"MOLECULE_SCENARIO_NAME": SCENARIO},
    )
    if result.returncode != 0:
        raise BenchError(f"the registry did not start: {(result.stdout + result.stderr)[-2000:]}")


def build_once(bench: Bench, app: Path, workdir: Path) -> BuildOnce:
    """Step 7: a one-line change on one host, then on three with build once, each way."""
    start_registry(workdir)
    once = {"stack_build_mode": "once", "stack_build_host": "bench-a"}
    runs = []
    for version, label, hosts, extra in (
        ("bench-3", "one-line change one host", ["bench-a"], {}),
        ("bench-4", "one-line change three hosts archive", HOSTS, once),
        (
            "bench-5",
            "one-line change three hosts registry first",
            HOSTS,
            {**once, "stack_build_registry": REGISTRY},
        ),
        (
            "bench-6",
            "one-line change three hosts registry",
            HOSTS,
            {**once, "stack_build_registry": REGISTRY},
        ),
    ):
        bump_version(app, version)
        runs.append(Measure.of(bench.deploy(label, hosts, extra=extra)))
        served = {
            h: on_host(h, f"curl -s -o /dev/null -w '%header{{x-algo-trade-version}}' {API}") for h in hosts
        }
        if set(served.values()) != {version}:
            raise BenchError(f"{label}: the hosts serve {served}, not {version}")
    return BuildOnce(*runs)


def other_containers() -> int:
    names = sh("docker", "ps", "--format", "{{.Names}}").split()
    return len([n for n in names if n not in HOSTS])


def leftovers() -> list[str]:
    """Bench containers or volumes that exist (none should once a run ends)."""
    containers = sh("docker", "ps", "-a", "--format", "{{.Names}}").split()
    volumes = sh("docker", "volume", "ls", "--format", "{{.Name}}").split()
    ours = {*HOSTS, REGISTRY_HOST} | {f"{h}-docker" for h in HOSTS}
    return sorted(ours & (set(containers) | set(volumes)))


def force_remove() -> None:
    """When destroy.yml could not run (Ansible itself broken): the bench's own names, by hand."""
    log(f"destroy.yml left {', '.join(leftovers())}; removing them with the docker client")
    subprocess.run(["docker", "rm", "-f", *HOSTS, REGISTRY_HOST], capture_output=True, check=False)
    subprocess.run(
        ["docker", "volume", "rm", *(f"{h}-docker" for h in HOSTS)], capture_output=True, check=False
    )
    subprocess.run(["docker", "network", "rm", f"molecule-{SCENARIO}"], capture_output=True, check=False)
    if leftovers():
        raise BenchError(f"the clean-up left {', '.join(leftovers())}")


def measure(one_host: bool, logs: Path) -> Report:
    workdir = Path(tempfile.mkdtemp(prefix="algotrade-bench-"))
    state = workdir / "state"
    state.mkdir()
    try:
        if leftovers():
            log(f"removing what an earlier run left: {', '.join(leftovers())}")
            remove_hosts(HOSTS, state, scenario=SCENARIO)
            if leftovers():
                force_remove()
        info = machine()
        apps = {h: workdir / f"sample-app-{h}" for h in HOSTS}
        for app in apps.values():
            shutil.copytree(REPO / "tests" / "sample-app", app, ignore=shutil.ignore_patterns("target"))
        log(f"making {COLD_BUILDER}")
        inventory = write_inventory(workdir, apps, cold_builder_archive(workdir))
        names = HOSTS[:1] if one_host else HOSTS
        log(f"starting {', '.join(names)} (network molecule-{SCENARIO}); logs in {logs}")
        with throwaway_hosts(names, state, scenario=SCENARIO):
            bench = Bench(inventory, logs)
            cold = bench.deploy("cold deploy", ["bench-a"])
            noop = bench.deploy("no-op", ["bench-a"], expect_no_change=True)
            info.host_docker = on_host("bench-a", "docker version --format '{{.Server.Version}}'")
            start_poller("bench-a")
            bump_version(apps["bench-a"])
            redeploy = bench.deploy("one-line change", ["bench-a"])
            polls = stop_poller("bench-a")
            if polls.last_version != NEW_VERSION:
                raise BenchError(f"after the redeploy the API reports version {polls.last_version!r}")
            image, runtime, added, base_size = app_layers("bench-a")
            other, fleet, fleet_error, once, once_error = None, None, "", None, ""
            if not one_host:
                # Their failure still leaves the figures above worth writing down.
                try:
                    other_cold = bench.deploy(f"cold deploy {OTHER_STRATEGY}", ["bench-b"])
                    bump_version(apps["bench-b"])
                    other_change = bench.deploy(f"one-line change {OTHER_STRATEGY}", ["bench-b"])
                    other = Strategy(
                        OTHER_STRATEGY,
                        Measure.of(other_cold),
                        bp.build_seconds(other_cold.stdout),
                        Measure.of(other_change),
                        bp.build_seconds(other_change.stdout),
                    )
                    cold_third = bench.deploy("cold deploy of a third host", ["bench-c"])
                    noop_one = bench.deploy("no-op one host", ["bench-a"], expect_no_change=True)
                    noop_three = bench.deploy("no-op three hosts", HOSTS, expect_no_change=True)
                    fleet = (cold_third, noop_one, noop_three)
                except BenchError as error:
                    log(f"bench-b and bench-c: {error}")
                    fleet_error = str(error)
                if fleet:
                    try:
                        once = build_once(bench, apps["bench-a"], workdir)
                    except BenchError as error:
                        log(f"build once: {error}")
                        once_error = str(error)
            log("removing the bench hosts")
        if leftovers():
            force_remove()
        info.uptime_after = sh("uptime").strip()
        info.others_after = other_containers()
        return Report(
            machine=info,
            cold=Measure.of(cold),
            cold_build=bp.build_seconds(cold.stdout),
            cold_times=cold.times,
            noop=Measure.of(noop),
            noop_times=noop.times,
            change=Measure.of(redeploy),
            change_build=bp.build_seconds(redeploy.stdout),
            change_times=redeploy.times,
            polls=polls,
            image=image,
            runtime=runtime,
            layers=added,
            base_size=base_size,
            cold_third=Measure.of(fleet[0]) if fleet else None,
            noop_one=Measure.of(fleet[1]) if fleet else None,
            noop_three=Measure.of(fleet[2]) if fleet else None,
            noop_three_times=fleet[2].times if fleet else [],
            fleet_error=fleet_error,
            default_strategy=DEFAULT_STRATEGY,
            other_strategy=other,
            build_once=once,
            build_once_error=once_error,
        )
    finally:
        if leftovers():
            force_remove()
        subprocess.run(["docker", "rmi", COLD_BUILDER], capture_output=True, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the hosts' clean-up


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--one-host", action="store_true", help="skip the three-host part (debugging)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    logs = REPO / ".cache" / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    logs.mkdir(parents=True)
    try:
        report = measure(args.one_host, logs)
    except BenchError as error:
        log(f"benchmark failed: {error}")
        return 1
    previous = args.output.read_text() if args.output.exists() else ""
    args.output.write_text(keep_suite_section(render(report), previous))
    log(f"wrote {args.output}")
    return 1 if report.fleet_error else 0


if __name__ == "__main__":
    sys.exit(main())
