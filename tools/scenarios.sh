#!/usr/bin/env bash
# Runs Molecule scenarios (create to destroy), three at a time (beside the checks lane,
# they keep the 2-core test machine busy; more at once would only slow each one down).
# Scenarios have their own hosts and networks (molecule-<scenario>).
# Each one's output goes to .cache/molecule/<scenario>.log and is printed when it ends
# (whole for a failure, its recap otherwise). Usage: scenarios.sh SCENARIO...
# SCENARIO@CORE,CORE... runs that scenario with each ansible-core in turn, in one slot
# (tools/scenario-on-core.sh: a scenario must never run beside itself).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
logs=$root/.cache/molecule
jobs=${SCENARIO_JOBS:-3}
mkdir -p "$logs"

# shellcheck disable=SC2317  # run by xargs, through the exported function
run_one() {
  local scenario=$1 log=$logs/$1.log start rc=0 core cores
  start=$(date +%s)
  if [[ $scenario == *@* ]]; then
    : >"$log"
    cores=${scenario#*@}
    for core in ${cores//,/ }; do
      "$root/tools/scenario-on-core.sh" "$core" "${scenario%@*}" >>"$log" 2>&1 || rc=$?
    done
  else
    molecule test -s "$scenario" >"$log" 2>&1 || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    echo "==> molecule test -s $scenario FAILED (exit $rc) after $(($(date +%s) - start)) s; its output:"
    cat "$log"
  else
    echo "==> molecule test -s $scenario passed in $(($(date +%s) - start)) s"
    grep -E 'passed|failed|SCENARIO RECAP' "$log" | tail -n 5
  fi
  return "$rc"
}
export -f run_one
export logs root

# The longest first, so the short ones fill in beside them.
rc=0
# shellcheck disable=SC2016  # $1 is run_one's argument, expanded by the inner bash
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || rc=$?

# Last, what failed and where, short: a CI page that keeps only the end of the output
# still names the failed tests and tasks.
if [ "$rc" -ne 0 ]; then
  echo "==> summary of the failed scenarios"
  for scenario in "$@"; do
    grep -qE 'Molecule executed .*failed' "$logs/$scenario.log" 2>/dev/null || continue
    echo "--- $scenario"
    # Molecule frames the output of its steps (colours, a bar) and wraps long lines, the
    # rest indented by two spaces: without the frame, and each wrapped line whole, first.
    sed -E 's/\x1b\[[0-9;]*m//g; s/^[[:space:]]*│ ?//' "$logs/$scenario.log" |
      awk 'NR > 1 && /^  [^ ]/ { line = line " " substr($0, 3); next } NR > 1 { print line } { line = $0 }
           END { print line }' |
      grep -aE '^(FAILED|ERROR) |^_+ .*test|^fatal: |^failed: |^=+ .*(passed|failed)' | grep -v RETRYING |
      cut -c1-400 | tail -n 40 || true
  done
fi
exit "$rc"
