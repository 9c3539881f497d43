#!/usr/bin/env bash
# The NPD deadline's acceptance line (issue 10): with a hung nvidia-smi, a
# `check --format npd` run ends within deadline + 0.5 s. A speed target, so it
# lives here and not in tests/npd.rs (which holds only that the deadline, not
# the tool's timeout, ends the run). Run it on a quiet machine.
# Usage: bench/npd.sh [RUNS]   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
cargo build --release -q
bin=$PWD/target/release/rigdoctor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
# A hung nvidia-smi that leaves a child behind, as in tests/npd.rs.
printf '#!/bin/sh\nsleep 60 &\nwait\n' > "$tmp/bin/nvidia-smi"
chmod +x "$tmp/bin/nvidia-smi"
sys=$PWD/fixtures/rigs/nv-2x3090-nvlink/root/sys

for deadline in 4 2 1; do
    walls=()
    for _ in $(seq "$runs"); do
        s=$(date +%s.%N)
        PATH="$tmp/bin:/usr/local/bin:/usr/bin:/bin" "$bin" --sysfs "$sys" check --format npd \
            --timeout 30 --class hardware,node-config --deadline "$deadline" >/dev/null 2>&1 || true
        e=$(date +%s.%N)
        walls+=("$(echo "$e - $s" | bc -l)")
    done
    max=$(printf '%s\n' "${walls[@]}" | sort -n | tail -1)
    med=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    ok=$(echo "$max <= $deadline + 0.5" | bc -l)
    printf 'deadline %s s: median %.3f s, max %.3f s over %d runs  (target <= %.1f s: %s)\n' \
        "$deadline" "$med" "$max" "$runs" "$(echo "$deadline + 0.5" | bc -l)" \
        "$([ "$ok" = 1 ] && echo met || echo MISSED)"
done
pkill -f "$tmp/bin" 2>/dev/null || true
