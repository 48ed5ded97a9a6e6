#!/bin/sh
# Lists each directory (arguments first, then PATH) holding both cargo and rustc, as
# "<dir> <rustc version> <cargo version>", versions without pre-release suffix, 0 when one fails to run.
seen=" "
ver() { "$1" --version 2>/dev/null | awk 'NR == 1 { sub(/[-+].*/, "", $2); print $2 }'; }
for dir in "$@" $(printf '%s' "${PATH:-}" | tr ':' ' '); do
    if [ -z "$dir" ] || [ ! -x "$dir/cargo" ] || [ ! -x "$dir/rustc" ]; then continue; fi
    case "$seen" in *" $dir "*) continue ;; esac
    seen="$seen$dir "
    r=$(ver "$dir/rustc"); c=$(ver "$dir/cargo")
    printf '%s %s %s\n' "$dir" "${r:-0}" "${c:-0}"
done
exit 0
