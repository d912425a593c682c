#!/usr/bin/env bash
# ansible-test sanity for the collection. ansible-test wants the collection under
# ansible_collections/<namespace>/<name>, outside any other git work tree (it asks
# git which files there are): it runs on a copy of the repository's files in a
# temporary directory. Its per-test venvs bootstrap pip with a script from a host this test bed
# cannot reach; tests/testbed/get_pip_offline.py stands in for it (cached where
# ansible-test looks first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=$(command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work=$tmp/ansible_collections/algotrade/deploy

pip_version=$("$python" - <<'PY'
import re, pathlib, ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
PY
)
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
install -m 0644 "$root/tests/testbed/get_pip_offline.py" "$cache/get_pip_${pip_version//./_}.py"

mkdir -p "$work"
(cd "$root" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$work"
cd "$work"
ansible-test sanity --python "$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" --color no "$@"
