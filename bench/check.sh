#!/usr/bin/env bash
# Speed and memory of `rigdoctor check` (numbers go in closing notes, not in tests).
# Usage: bench/check.sh [RUNS] [ORACLE_DIR]   (builds the release binary first)
#   ORACLE_DIR: a build of ../shared/tools/sycl-oracle (setup.sh ORACLE_DIR): its
#   real SYCL runtime answers as `sycl-ls` for the live check.
# Reports: replays of a fixture; the live check against its slowest tool (the
# overhead rigdoctor adds over the probe it waits for, per run; target <= 20 ms); and
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

# Wall time from date (ns; /usr/bin/time's %e has 10 ms steps), RSS from /usr/bin/time.
# Prints the line and leaves the median in $last_ms.
last_ms=0
measure() { # label, args...
    local label=$1; shift
    local times=() rss=0
    for _ in $(seq "$runs"); do
        local t s e r
        t=$(mktemp)
        s=$(date +%s%N)
        /usr/bin/time -o "$t" -f "%M" "$bin" "$@" >/dev/null 2>&1 || true
        e=$(date +%s%N)
        times+=($(( (e - s) / 1000000 )))
        r=$(tail -1 "$t"); rm -f "$t"
        [ "$r" -gt "$rss" ] && rss=$r
    done
    last_ms=$(printf '%s\n' "${times[@]}" | median)
    printf '%-44s median %6d ms   max RSS %6.1f MB   (%d runs)\n' "$label" "$last_ms" "$(echo "$rss/1024" | bc -l)" "$runs"
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
walls=() slowest=() overheads=() names=()
for _ in $(seq "$runs"); do
    s=$(date +%s%N)
    PATH=$path "$bin" check --format json > "$tmp/live.json" 2>/dev/null || true
    e=$(date +%s%N)
    w=$(( (e - s) / 1000000 ))
    read -r ms name < <(python3 -c 'import json,sys; p=max(json.load(open(sys.argv[1]))["probes"], key=lambda p: p["duration_ms"]); print(p["duration_ms"], p["name"])' "$tmp/live.json")
    # Per run: what the check adds to the tool it waited for longest.
    walls+=("$w"); slowest+=("$ms"); overheads+=($((w - ms))); names+=("$name")
done
w=$(printf '%s\n' "${walls[@]}" | median)
sl=$(printf '%s\n' "${slowest[@]}" | median)
ov=$(printf '%s\n' "${overheads[@]}" | median)
ovmin=$(printf '%s\n' "${overheads[@]}" | sort -n | head -1)
slowname=$(printf '%s\n' "${names[@]}" | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
printf '%-44s median %6d ms   slowest tool %s median %d ms   overhead median %d ms, min %d ms (target <= 20)   (%d runs%s)\n' \
    "check live (this machine)" "$w" "$slowname" "$sl" "$ov" "$ovmin" "$runs" "${oracle:+, sycl-ls = oracle}"

# --- replay time against the number of GPUs
# Linear means in the facts: N GPUs and their N(N-1)/2 pairs (nvidia.links).
for n in 1 8 64 256; do
    python3 fixtures/mkrig.py --synth "$n" "$tmp/rig$n"
    r=$runs; [ "$n" -ge 256 ] && r=$(( runs < 3 ? runs : 3 ))
    runs=$r measure "check --replay ${n} x RTX 3090 (synthetic)" check --replay "$tmp/rig$n"
    runs=${1:-10}
    facts=$(( n + n + n * (n - 1) / 2 ))
    printf '%-44s %6d facts (GPUs, NVIDIA GPUs, pairs)   %.3f ms per fact%s\n' "" "$facts" \
        "$(echo "$last_ms/$facts" | bc -l)" "$([ "$n" -eq 256 ] && echo "   (target: under 3000 ms)")"
done
