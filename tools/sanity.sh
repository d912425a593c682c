#!/usr/bin/env bash
# ansible-test sanity for the collection, with each ansible-core it is checked against:
#   2.17  the oldest meta/runtime.yml allows: .venv-core2.17 (tests/testbed/setup.sh), this
#         machine's Python;
#   2.19  the development venv's (.venv, requirements-dev.txt);
#   2.21  the newest meta/runtime.yml allows: it needs Python >= 3.12, so it runs in the
#         test bed image local/ansible-core-2.21 (Debian 13, Python 3.13; tests/testbed/images/).
# Each run says which ansible-core and Python it used and how long it took; the script
# fails when any run fails, after running them all.
# Usage: tools/sanity.sh [CORE...] [ANSIBLE-TEST SANITY ARGS...]
#   e.g. tools/sanity.sh; tools/sanity.sh 2.21; tools/sanity.sh 2.17 --test pylint
#
# ansible-test wants the collection under ansible_collections/<namespace>/<name>, outside any
# other git work tree (it asks git which files there are): each run is on its own copy of
# the built collection's files in a temporary directory. Its per-test venvs bootstrap pip with a
# script from a host this test bed cannot reach; tests/testbed/get_pip_offline.py stands in
# for it (cached where ansible-test looks first, for each core's pip version).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
all_cores=(2.17 2.19 2.21)
image=local/ansible-core-2.21:trixie

# In a copy of the collection (the working directory), with the chosen core's python3 and
# ansible-test first on PATH. CORE: the release that must be there.
run_in_copy() {
  local core=$1 python pip_version cache version
  shift
  python=$(command -v python3)
  version=$("$python" -c 'from ansible.release import __version__; print(__version__)')
  if [[ $version != "$core".* ]]; then
    echo "expected ansible-core $core, found $version ($python): run tests/testbed/setup.sh" >&2
    return 1
  fi
  pip_version=$("$python" - <<'PY'
import re, pathlib, ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
PY
  )
  cache=$HOME/.ansible/test/cache
  mkdir -p "$cache"
  install -m 0644 "$(dirname "$0")/get_pip_offline.py" "$cache/get_pip_${pip_version//./_}.py"
  echo "==> $(ansible-test --version), Python $("$python" -c 'import platform; print(platform.python_version())') ($python)"
  ansible-test sanity --python "$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
    --color no "$@"
}

if [ "${1:-}" = --run-in-copy ]; then
  shift
  run_in_copy "$@"
  exit
fi

cores=()
while [ $# -gt 0 ] && [[ $1 =~ ^2\.[0-9]+$ ]]; do
  cores+=("$1")
  shift
done
[ ${#cores[@]} -gt 0 ] || cores=("${all_cores[@]}")

tmp=$(mktemp -d)
container=${TESTBED_HOST_PREFIX:-}sanity-core2.21-$$
# The container too, should the run be interrupted.
trap 'docker rm -f "$container" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

# ansible-core 2.21 in its image. The copy is mounted at the same path; ansible-test's
# per-test venvs persist in .cache/sanity/core-2.21 (made again when the image changes,
# as its Python may have). TEST BED ONLY: pip reaches the package index through this
# machine's egress, so the container gets this machine's CA bundle (SSL_CERT_FILE).
run_core_2_21() {
  local work=$1 helpers=$2 home=$root/.cache/sanity/core-2.21 image_id
  shift 2
  if ! image_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null); then
    echo "$image is missing: run tests/testbed/setup.sh images" >&2
    return 1
  fi
  mkdir -p "$home"
  if [ "$(cat "$home/.image-id" 2>/dev/null)" != "$image_id" ]; then
    rm -rf "$home/.ansible/test/venv"
    echo "$image_id" >"$home/.image-id"
  fi
  local args=(--rm --name "$container" --user "$(id -u):$(id -g)" -e HOME=/sanity-home
    -e LC_ALL=C.UTF-8 -v "$home:/sanity-home" -v "$work:$work" -v "$helpers:$helpers:ro" -w "$work")
  if [ -n "${SSL_CERT_FILE:-}" ]; then
    # As the container's system store: ansible-test passes its per-test venvs' pip no
    # PIP_CERT or SSL_CERT_FILE, and that pip trusts the system store.
    args+=(-v "$(readlink -f "$SSL_CERT_FILE"):/etc/ssl/certs/ca-certificates.crt:ro")
  fi
  docker run "${args[@]}" "$image" "$helpers/sanity.sh" --run-in-copy 2.21 "$@"
}

# What ships, as Galaxy's importer checks it: the built tarball's files (galaxy.yml's
# build_ignore leaves out the tests, Molecule and tools, which ruff and mypy check), and
# the ignore files of tests/sanity.
run_core() {
  local core=$1 work=$tmp/$1/ansible_collections/algotrade/deploy helpers=$tmp/$1/helpers
  shift
  mkdir -p "$work/tests" "$helpers"
  tar -xzf "$tarball" -C "$work"
  cp -r "$root/tests/sanity" "$work/tests/"
  # This script and pip's offline bootstrap, beside the copy: not part of what is checked.
  cp "$root/tools/sanity.sh" "$root/tests/testbed/get_pip_offline.py" "$helpers/"
  case $core in
    2.17) (cd "$work" && PATH=$root/.venv-core2.17/bin:$PATH "$helpers/sanity.sh" --run-in-copy 2.17 "$@") ;;
    2.19) (cd "$work" && PATH=${VENV:-$root/.venv}/bin:$PATH "$helpers/sanity.sh" --run-in-copy 2.19 "$@") ;;
    2.21) run_core_2_21 "$work" "$helpers" "$@" ;;
    *)
      echo "no sanity run for ansible-core $core (one of: ${all_cores[*]})" >&2
      return 2
      ;;
  esac
}

tarball=$(cd "$root" && ansible-galaxy collection build --force --output-path "$tmp" | sed -n 's/^Created collection for .* at //p')
summary=()
failed=0
for core in "${cores[@]}"; do
  echo "==> ansible-test sanity with ansible-core $core"
  start=$SECONDS
  if run_core "$core" "$@"; then
    result=passed
  else
    result=FAILED
    failed=1
  fi
  summary+=("ansible-core $core: $result ($((SECONDS - start)) s)")
done
echo "==> sanity:"
printf '    %s\n' "${summary[@]}"
exit "$failed"
