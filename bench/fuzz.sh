#!/usr/bin/env bash
# The fuzz harness of tests/fuzz.rs, run longer (issue 8, proof): seeded mutations of every
# fixture capture and every output in fixtures/outputs, replayed in-process. Prints the case
# counts (by exit code, by mutation, garbage cases) and the time taken; counts go in closing
# notes, not in tests.
# Usage: bench/fuzz.sh [CASES] [SEED_HEX]   (default 20000 cases, the test's own seed)
# Each seed is a different, reproducible run: bench/fuzz.sh 20000 1234abcd
# FUZZ_PROFILE=dev runs the debug build (no release LTO build on a shared machine).
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-20000}
seed=${2:-}
profile=${FUZZ_PROFILE:-release}
cargo test --profile "$profile" -q --test fuzz --no-run
start=$(date +%s.%N)
env FUZZ_CASES="$cases" ${seed:+FUZZ_SEED="$seed"} \
    cargo test --profile "$profile" -q --test fuzz -- --nocapture 2>&1 |
    grep -E '^fuzz:|panicked|case [0-9]+|test result' || true
end=$(date +%s.%N)
printf 'fuzz: %d cases in %.1f s wall (%.1f ms per case)\n' "$cases" \
    "$(echo "$end - $start" | bc)" "$(echo "($end - $start) * 1000 / $cases" | bc -l)"
