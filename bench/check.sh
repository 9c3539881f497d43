#!/usr/bin/env bash
# Speed and memory of `rigdoctor check` (numbers go in closing notes, not in tests).
# Usage: bench/check.sh [RUNS] [ORACLE_DIR]   (builds the release binary first)
#   ORACLE_DIR: a build of ../shared/tools/sycl-oracle (setup.sh ORACLE_DIR): its
#   real SYCL runtime answers as `sycl-ls` for the live check.
# Reports: replays of a fixture; the live check against its slowest tool (the
# overhead rigdoctor adds over the probe it waits for; target <= 20 ms); and
# replays of synthetic 1/8/64/256 x RTX 3090 rigs (fixtures/mkrig.py --synth;
# target: linear, 256 GPUs under 3 s). The machine is shared: keep RUNS small.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
oracle=${2:-}
cargo build --release -q
bin=$PWD/target/release/rigdoctor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

measure() { # label, args...
    local label=$1; shift
    local times=() rss=0
    for _ in $(seq "$runs"); do
        local out t
        t=$(mktemp)
        /usr/bin/time -o "$t" -f "%e %M" "$bin" "$@" >/dev/null 2>&1 || true
        out=$(tail -1 "$t"); rm -f "$t"
        times+=("$(echo "$out" | cut -d' ' -f1)")
        local r; r=$(echo "$out" | cut -d' ' -f2)
        [ "$r" -gt "$rss" ] && rss=$r
    done
    local m
    m=$(printf '%s\n' "${times[@]}" | median)
    printf '%-44s median %6.0f ms   max RSS %6.1f MB   (%d runs)\n' "$label" "$(echo "$m*1000" | bc)" "$(echo "$rss/1024" | bc -l)" "$runs"
}

measure "check --replay dual-a770 (human)" check --replay fixtures/rigs/dual-a770
measure "check --replay dual-a770 (json)" check --replay fixtures/rigs/dual-a770 --format json
measure "rules" rules

# --- live check against its slowest tool
path=$PATH
if [ -n "$oracle" ]; then
    pocl=$(ls /usr/lib/x86_64-linux-gnu/libpocl.so.2* | head -1)
    enum=$(ls "$oracle"/bin/sycl_enum-* | head -1)
    mkdir -p "$tmp/bin"
    # sycl-ls = the oracle's enumerator on Intel's runtime (same output formats).
    cat > "$tmp/bin/sycl-ls" <<EOF
#!/bin/sh
export LD_LIBRARY_PATH="$oracle/venv/lib" OCL_ICD_VENDORS="$oracle/icd-empty" OCL_ICD_FILENAMES="$pocl:$oracle/venv/lib/libintelocl.so"
exec "$enum" "\$@"
EOF
    chmod +x "$tmp/bin/sycl-ls"
    path="$tmp/bin:$PATH"
fi
walls=() slowest=() names=()
for _ in $(seq "$runs"); do
    s=$(date +%s%N)
    PATH=$path "$bin" check --format json > "$tmp/live.json" 2>/dev/null || true
    e=$(date +%s%N)
    walls+=($(( (e - s) / 1000000 )))
    read -r ms name < <(python3 -c 'import json,sys; p=max(json.load(open(sys.argv[1]))["probes"], key=lambda p: p["duration_ms"]); print(p["duration_ms"], p["name"])' "$tmp/live.json")
    slowest+=("$ms"); names+=("$name")
done
w=$(printf '%s\n' "${walls[@]}" | median)
sl=$(printf '%s\n' "${slowest[@]}" | median)
printf '%-44s median %6d ms   slowest tool %s median %d ms   overhead %d ms   (%d runs%s)\n' \
    "check live (this machine)" "$w" "${names[0]}" "$sl" "$((w - sl))" "$runs" "${oracle:+, sycl-ls = oracle}"

# --- replay time against the number of GPUs
for n in 1 8 64 256; do
    python3 fixtures/mkrig.py --synth "$n" "$tmp/rig$n"
    r=$runs; [ "$n" -ge 256 ] && r=$(( runs < 3 ? runs : 3 ))
    runs=$r measure "check --replay ${n} x RTX 3090 (synthetic)" check --replay "$tmp/rig$n"
    runs=${1:-10}
done
