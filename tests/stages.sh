#!/usr/bin/env bash
# `make test`: runs each named make target (a stage) to its end whatever the others did, keeps its whole output in
# tests/output/stages/<stage>.log, and ends with one line per stage and a total; exits non-zero if any stage failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
logs=$root/tests/output/stages
mkdir -p "$logs"

# "<passed> <failed>" read from a stage's log: pytest's closing line, ansible-test's and ansible-lint's summaries, or
# molecule.sh's line per scenario. A stage whose log holds none of them counts as one check.
counts() {
    local log=$1 rc=$2 line passed failed
    line=$(grep -E '^=+ .*[0-9]+ (passed|failed|error)' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        line=$(grep -E '^[0-9]+ (passed|failed)' "$log" | tail -n 1)  # pytest -q
    fi
    if [ -n "$line" ]; then
        passed=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
        failed=$(( $(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0) \
                 + $(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0) ))
    elif grep -qE '^molecule [^ ]+: ' "$log"; then
        passed=$(grep -cE '^molecule [^ ]+: passed' "$log")
        failed=$(grep -cE '^molecule [^ ]+: FAILED' "$log")
    elif grep -q '^Running sanity test' "$log"; then
        # "ERROR: The 2 sanity test(s) listed below (out of 40) failed"
        failed=$(sed -nE 's/^ERROR: The ([0-9]+) sanity test.*/\1/p' "$log" | tail -n 1)
        failed=${failed:-0}
        passed=$(( $(grep -c '^Running sanity test' "$log") - failed ))
    else
        passed=$(( rc == 0 ? 1 : 0 ))
        failed=$(( rc == 0 ? 0 : 1 ))
    fi
    # A stage that exited non-zero has failed, whatever its counts say (a crash before any test ran).
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
    fi
    echo "$passed $failed"
}

summary=()
stages_failed=0
for stage in "$@"; do
    echo "=== make $stage"
    start=$(date +%s)
    make --no-print-directory -C "$root" "$stage" 2>&1 | tee "$logs/$stage.log"
    rc=${PIPESTATUS[0]}
    read -r passed failed < <(counts "$logs/$stage.log" "$rc")
    [ "$rc" -eq 0 ] || stages_failed=$((stages_failed + 1))
    summary+=("$(printf '%s: %d passed, %d failed' "$stage" "$passed" "$failed") ($(( $(date +%s) - start )) s)")
done

echo
printf '%s\n' "${summary[@]}"
echo "stages: $(( $# - stages_failed )) passed, $stages_failed failed"
[ "$stages_failed" -eq 0 ]
