#!/usr/bin/env bash
# Runs the molecule scenarios (converge, idempotence, verify, destroy) on the shared test image.
# Scenarios are independent, so they run two at a time; each one's log is kept and shown if it fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
VOLTX_TEST_IMAGE=${VOLTX_TEST_IMAGE:-$(bash tests/image/build.sh)}
export VOLTX_TEST_IMAGE
export ANSIBLE_COLLECTIONS_PATH=$root/.build
export PATH=$root/.venv/bin:$PATH
export MOLECULE_LOGS=$root/tests/output/molecule
# Containers, volumes and the fixture build are named after this checkout, so two checkouts can test side by side.
VOLTX_MOLECULE_NS=${VOLTX_MOLECULE_NS:-$(printf %s "$root" | sha256sum | cut -c1-8)}
export VOLTX_MOLECULE_NS
export VOLTX_FIXTURE_TARGET_DIR=${VOLTX_FIXTURE_TARGET_DIR:-${TMPDIR:-/tmp}/voltx-fixture-target-$VOLTX_MOLECULE_NS}
mkdir -p "$MOLECULE_LOGS"

run_scenario() {
    local scenario=$1 start
    start=$(date +%s)
    if molecule test -s "$scenario" > "$MOLECULE_LOGS/$scenario.log" 2>&1; then
        echo "molecule $scenario: passed in $(( $(date +%s) - start )) s"
    else
        echo "molecule $scenario: FAILED after $(( $(date +%s) - start )) s"
        tail -n 80 "$MOLECULE_LOGS/$scenario.log"
        return 1
    fi
}
export -f run_scenario

# Every scenario, or the ones named as arguments (bash tests/molecule.sh harvest train_tmux).
if [ "$#" -gt 0 ]; then
    scenarios=("$@")
else
    mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename | sort)
fi
[ "${#scenarios[@]}" -gt 0 ] || { echo "no molecule scenarios"; exit 0; }
# shellcheck disable=SC2016  # $1 is expanded by the inner bash, one scenario per call
printf '%s\n' "${scenarios[@]}" | xargs -P "${MOLECULE_JOBS:-2}" -I{} bash -c 'run_scenario "$1"' _ {}
