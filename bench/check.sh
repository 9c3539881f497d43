#!/usr/bin/env bash
# Speed and memory of `rigdoctor check` (numbers go in closing notes, not in tests).
# Usage: bench/check.sh [RUNS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release -q
bin=target/release/rigdoctor

measure() { # label, args...
    local label=$1; shift
    local times=() rss=0
    for _ in $(seq "$runs"); do
        local out tmp
        tmp=$(mktemp)
        /usr/bin/time -o "$tmp" -f "%e %M" "$bin" "$@" >/dev/null 2>&1 || true
        out=$(tail -1 "$tmp"); rm -f "$tmp"
        times+=("$(echo "$out" | cut -d' ' -f1)")
        local r; r=$(echo "$out" | cut -d' ' -f2)
        [ "$r" -gt "$rss" ] && rss=$r
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    printf '%-44s median %6.0f ms   max RSS %6.1f MB   (%d runs)\n' "$label" "$(echo "$median*1000" | bc)" "$(echo "$rss/1024" | bc -l)" "$runs"
}

measure "check --replay dual-a770 (human)" check --replay fixtures/rigs/dual-a770
measure "check --replay dual-a770 (json)" check --replay fixtures/rigs/dual-a770 --format json
measure "check live (this machine)" check --format json
measure "rules" rules
