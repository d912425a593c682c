#!/usr/bin/env bash
# Runs one Molecule scenario (`molecule test`, create to destroy) with an ansible-core other
# than the development venv's 2.19, to test the ends of meta/runtime.yml's range:
#   2.17  the oldest: .venv-core2.17 (tests/testbed/setup.sh core-venv), this machine's Python;
#   2.21  the newest: it needs Python >= 3.12, so Molecule runs in a container of the test
#         bed image local/ansible-core-2.21 (Debian 13, Python 3.13; tests/testbed/images/).
# Both have the dev venv's collections (its `ansible` package) and the same Molecule
# configuration. The scenario's output goes to .cache/molecule/<scenario>-core<CORE>.log,
# printed whole when it fails and its recap otherwise; the script says which ansible-core
# and Python ran it and how long it took, and exits with the scenario's status.
# Usage: tools/scenario-on-core.sh CORE SCENARIO   e.g. tools/scenario-on-core.sh 2.21 default
# A scenario's hosts and network have fixed names (molecule-<scenario>): never run the same
# scenario twice at once, under any core.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
image=local/ansible-core-2.21:trixie
if [ $# -ne 2 ]; then
  echo "usage: $0 CORE SCENARIO (CORE: 2.17 or 2.21)" >&2
  exit 2
fi
core=$1 scenario=$2
if [ ! -f "$root/molecule/$scenario/molecule.yml" ]; then
  echo "no scenario $scenario in molecule/" >&2
  exit 2
fi
logs=$root/.cache/molecule
log=$logs/$scenario-core$core.log
mkdir -p "$logs"

# What runs the scenario, in the environment it runs in (the container's, for 2.21): the
# core it must be, then the versions, then the scenario. The base configuration is named:
# Molecule 26.6 (with 2.17) looks for it only beside a .git directory, and a git worktree
# has a .git file.
# shellcheck disable=SC2016  # expanded by the inner bash
inner='set -euo pipefail
version=$(python3 -c "from ansible.release import __version__; print(__version__)")
if [[ $version != "$1".* ]]; then
  echo "expected ansible-core $1, found $version: run tests/testbed/setup.sh" >&2
  exit 1
fi
echo "==> ansible-core $version, Python $(python3 -c "import platform; print(platform.python_version())")" \
  "($(command -v python3)), $(molecule --version 2>/dev/null | head -n 1 | sed -E "s/\x1b\[[0-9;]*m//g; s/ +$//")"
molecule --base-config .config/molecule/config.yml test -s "$2" >"$3" 2>&1'

case $core in
  2.17)
    if [ ! -x "$root/.venv-core2.17/bin/molecule" ]; then
      echo ".venv-core2.17 has no molecule: run tests/testbed/setup.sh core-venv" >&2
      exit 1
    fi
    run() {
      (cd "$root" && PATH=$root/.venv-core2.17/bin:$PATH ANSIBLE_COLLECTIONS_PATH=$root/.collections \
        bash -c "$inner" _ "$core" "$scenario" "$log")
    }
    ;;
  2.21)
    if ! docker image inspect "$image" >/dev/null 2>&1; then
      echo "$image is missing: run tests/testbed/setup.sh images" >&2
      exit 1
    fi
    container=${TESTBED_HOST_PREFIX:-}scenario-core2.21-$$
    home=$(mktemp -d)
    # The container too, should the run be interrupted (Molecule's hosts stay, as they would).
    trap 'docker rm -f "$container" >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
    # The machine's Docker engine through its socket; the host network, so that the hosts'
    # bridge addresses answer as they do on the machine (ssh); the repository at the same
    # path, so that the paths Molecule and the tests give the engine are the machine's; its
    # .cache too where that is a link out of it (a git worktree's). /etc/passwd and
    # /etc/group: ssh wants to know the user it runs as.
    args=(--rm --name "$container" --network host --user "$(id -u):$(id -g)"
      --group-add "$(stat -c %g /var/run/docker.sock)" -v /var/run/docker.sock:/var/run/docker.sock
      -v /etc/passwd:/etc/passwd:ro -v /etc/group:/etc/group:ro
      -e HOME="$home" -v "$home:$home" -e LC_ALL=C.UTF-8
      -e ANSIBLE_COLLECTIONS_PATH="$root/.collections" -v "$root:$root" -w "$root")
    cache=$(readlink -f "$root/.cache")
    if [ "$cache" != "$root/.cache" ]; then
      args+=(-v "$cache:$cache")
    fi
    run() {
      docker run "${args[@]}" "$image" bash -c "$inner" _ "$core" "$scenario" "$log"
    }
    ;;
  *)
    echo "no scenario run for ansible-core $core (2.17 or 2.21; 2.19 is the dev venv's: make scenario)" >&2
    exit 2
    ;;
esac

echo "==> molecule test -s $scenario with ansible-core $core"
rm -f "$log"
start=$SECONDS
rc=0
run || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "==> molecule test -s $scenario with ansible-core $core FAILED (exit $rc) after $((SECONDS - start)) s; its output:"
  cat "$log" 2>/dev/null || true
else
  echo "==> molecule test -s $scenario with ansible-core $core passed in $((SECONDS - start)) s"
  grep -E 'passed|failed|SCENARIO RECAP' "$log" | tail -n 5 || true
fi
exit "$rc"
