#!/usr/bin/env bash
# Benchmark of `rigdoctor watch` (not a test: numbers for a person to read).
#
#   bench/watch.sh [path/to/rigdoctor] [seconds]
#
# 1. Cost: `rigdoctor watch --pid <a sleeping process> --interval 1` for
#    SECONDS (default 30) with two GPUs' worth of sources (an xe card with
#    gtidle + hwmon energy, an amdgpu card with gpu_busy_percent + VRAM +
#    hwmon power, in a fake sysfs tree) and a fake nvidia-smi streaming one
#    more GPU. Reports rigdoctor's own CPU time per second watched (utime +
#    stime from /proc/PID/stat, steady state after the first 3 s) and its peak
#    RSS (VmHWM). Targets: <= 0.5 % of one core, <= 10 MB.
# 2. Time to verdict: `rigdoctor watch -- sh -c 'sleep 6; <CPU burner>'` with
#    idle GPUs; the time from the burner's start to the first fallback-family
#    verdict line (cpu-fallback or partial-offload; on a machine shared with
#    other work the burner may get fewer cores than "several").
#    Target: <= window + one interval (6 s at the defaults).
set -euo pipefail
RD=${1:-target/release/rigdoctor}
SECS=${2:-30}
RD=$(cd "$(dirname "$RD")" && pwd)/$(basename "$RD")
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

card() { # card addr driver vendor
  local dev="$W/sys/devices/pci0000:00/$2"
  mkdir -p "$dev/drm/$1" "$W/sys/bus/pci/drivers/$3" "$W/sys/class/drm"
  ln -s "../../../bus/pci/drivers/$3" "$dev/driver"
  ln -s "../../../$2" "$dev/drm/$1/device"
  ln -s "../../devices/pci0000:00/$2/drm/$1" "$W/sys/class/drm/$1"
  echo "$4" > "$dev/vendor"
}
card card0 0000:03:00.0 xe 0x8086
X=$W/sys/devices/pci0000:00/0000:03:00.0
mkdir -p "$X/tile0/gt0/gtidle" "$X/tile0/gt1/gtidle" "$X/hwmon/hwmon3"
echo 1000 > "$X/tile0/gt0/gtidle/idle_residency_ms"
echo 1000 > "$X/tile0/gt1/gtidle/idle_residency_ms"
echo 0 > "$X/hwmon/hwmon3/energy1_input"
# A RAPL package zone (issue 12: CPU energy is read every sample too).
mkdir -p "$W/sys/class/powercap/intel-rapl:0"
echo package-0 > "$W/sys/class/powercap/intel-rapl:0/name"
echo 0 > "$W/sys/class/powercap/intel-rapl:0/energy_uj"
echo 262143328850 > "$W/sys/class/powercap/intel-rapl:0/max_energy_range_uj"
card card1 0000:04:00.0 amdgpu 0x1002
A=$W/sys/devices/pci0000:00/0000:04:00.0
mkdir -p "$A/hwmon/hwmon4"
echo 0 > "$A/gpu_busy_percent"
echo 1073741824 > "$A/mem_info_vram_used"
echo 15000000 > "$A/hwmon/hwmon4/power1_average"
# Idle GPUs: residency and energy advance with the clock.
( t0=$(date +%s%3N); while [ -d "$X" ]; do sleep 0.2; n=$(( $(date +%s%3N) - t0 + 1000 ));
  echo $n > "$X/tile0/gt0/gtidle/idle_residency_ms"; echo $n > "$X/tile0/gt1/gtidle/idle_residency_ms";
  echo $(( n * 10000 )) > "$X/hwmon/hwmon3/energy1_input"; done ) 2>/dev/null &
PIDS+=($!)
mkdir -p "$W/bin"
cat > "$W/bin/nvidia-smi" <<'EOF'
#!/bin/sh
# fake: the real CSV lines of fixtures/outputs/nvidia-smi-query/modded-4090-48gb-zero-util-csv.txt
while :; do
  printf '%s\n' 'utilization.gpu [%], memory.used [MiB], memory.total [MiB], name' '0 %, 678 MiB, 49140 MiB, NVIDIA GeForce RTX 4090'
  sleep 1
done
EOF
chmod +x "$W/bin/nvidia-smi"
export PATH="$W/bin:$PATH"

ticks() { awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
CLK=$(getconf CLK_TCK)

cost() { # label, then the target's pid in SLEEPER
echo "== cost: rigdoctor watch --pid ($1), interval 1 s, ${SECS} s, 3 GPUs (xe, amdgpu, nvidia-smi)"
"$RD" --sysfs "$W/sys" watch --pid "$SLEEPER" --interval 1 --window 5 --duration "$SECS" --output "$W/cost.txt" &
RPID=$!
PIDS+=("$RPID")
sleep 3
T0=$(ticks "$RPID"); S0=$(date +%s.%N)
HWM=0; T1=$T0; S1=$S0
while kill -0 "$RPID" 2>/dev/null; do
  if t=$(ticks "$RPID" 2>/dev/null); then T1=$t; S1=$(date +%s.%N); fi
  h=$(awk '/VmHWM/ { print $2 }' "/proc/$RPID/status" 2>/dev/null || echo 0)
  [ -n "$h" ] && [ "$h" -gt "$HWM" ] && HWM=$h
  sleep 0.5
done
wait "$RPID" || true
awk -v t0="$T0" -v t1="$T1" -v s0="$S0" -v s1="$S1" -v clk="$CLK" -v hwm="$HWM" 'BEGIN {
  cpu = (t1 - t0) / clk; wall = s1 - s0;
  printf "rigdoctor CPU: %.3f s over %.1f s watched = %.2f %% of one core (ticks of 1/%d s)\n", cpu, wall, 100 * cpu / wall, clk;
  printf "rigdoctor peak RSS (VmHWM): %.1f MB\n", hwm / 1024;
}'
grep -c . "$W/cost.txt" >/dev/null && tail -3 "$W/cost.txt"
}
sleep 100000 &
SLEEPER=$!
PIDS+=("$SLEEPER")
cost "sleeping process"
kill "$SLEEPER" 2>/dev/null || true
# An engine-shaped target: 33 threads (schedstat is read per thread every
# sample) and a few hundred mappings (maps is read at each tree re-discovery).
if command -v python3 >/dev/null; then
  python3 -c 'import threading, time, json, ssl, sqlite3, decimal, asyncio, email, http.client, xml.dom.minidom, ctypes, mmap
for _ in range(32): threading.Thread(target=time.sleep, args=(1e5,), daemon=True).start()
time.sleep(1e5)' &
  SLEEPER=$!
  PIDS+=("$SLEEPER")
  sleep 1
  echo "(target: $(ls /proc/$SLEEPER/task | wc -l) threads, $(wc -l < /proc/$SLEEPER/maps) mappings)"
  cost "python3, 33 threads"
fi

echo
echo "== time to verdict: idle GPUs, a CPU burner starts after 6 s (interval 1 s, window 5 s)"
BURN="timeout 20 sh -c 'while :; do :; done' & timeout 20 sh -c 'while :; do :; done' & timeout 20 sh -c 'while :; do :; done' & wait"
"$RD" --sysfs "$W/sys" watch --format json --interval 1 --window 5 --duration 22 --output "$W/ttv.jsonl" -- \
  sh -c "sleep 6; date +%s.%N > '$W/onset'; $BURN" &
RPID=$!
PIDS+=("$RPID")
START=$(date +%s.%N)
wait "$RPID" || true
ONSET=$(cat "$W/onset")
# Verdict times are seconds since rigdoctor started; START is within a few ms of that.
awk -v start="$START" -v onset="$ONSET" '
  /"type":"verdict"/ && /"verdict":"(cpu-fallback|partial-offload)"/ && !done {
    match($0, /"t":[0-9.]+/); t = substr($0, RSTART + 4, RLENGTH - 4);
    match($0, /"verdict":"[a-z-]+"/); v = substr($0, RSTART + 11, RLENGTH - 12);
    printf "first %s verdict %.1f s after the burner started (target <= 6 s)\n", v, start + t - onset; done = 1 }
  END { if (!done) print "no fallback verdict seen (a very busy machine?)" }' "$W/ttv.jsonl"
grep '"type":"verdict"' "$W/ttv.jsonl" | sed 's/"gpus":.*//' | cut -c1-160
