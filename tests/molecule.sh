#!/usr/bin/env bash
# Runs every molecule scenario (converge, idempotence, verify, destroy) on the shared test image.
# Scenarios are independent, so they run two at a time; each one's log is kept and shown if it fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export VOLTX_TEST_IMAGE=${VOLTX_TEST_IMAGE:-$(bash tests/image/build.sh)}
export ANSIBLE_COLLECTIONS_PATH=$root/.build
export PATH=$root/.venv/bin:$PATH
logs=$root/tests/output/molecule
mkdir -p "$logs"
scenarios=$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename | sort)
[ -n "$scenarios" ] || { echo "no molecule scenarios"; exit 0; }
printf '%s\n' $scenarios | xargs -P "${MOLECULE_JOBS:-2}" -I{} bash -c '
    start=$(date +%s)
    if molecule test -s {} > "'"$logs"'/{}.log" 2>&1; then
        echo "molecule {}: passed in $(( $(date +%s) - start )) s"
    else
        echo "molecule {}: FAILED after $(( $(date +%s) - start )) s"; tail -n 80 "'"$logs"'/{}.log"; exit 1
    fi'
