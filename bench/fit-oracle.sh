#!/usr/bin/env bash
# Accuracy oracle for `rigdoctor fit` (issue 11): real llama.cpp (CPU) loads the
# models fixtures/gguf/mkgguf.py writes and prints its own model / KV cache /
# compute buffer sizes; the logs are kept in fixtures/gguf/llama-cpp/ so CI
# compares predictions without building llama.cpp. Not CI: it builds
# llama.cpp (minutes on 2 cores) and writes ~440 MB of models.
#
#   bench/fit-oracle.sh [BUILD_DIR=/work/llama] [MODELS=/work/fitmodels]
#
# llama.cpp's source comes with PyPI's llama-cpp-python sdist (vendor/llama.cpp):
#   pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d SRC
#   tar xzf SRC/llama_cpp_python-0.3.36.tar.gz -C SRC
#   pip install cmake ninja gguf
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-/work/llama}
models=${2:-/work/fitmodels}
src=${LLAMA_SRC:-/work/llama-src/llama_cpp_python-0.3.36/vendor/llama.cpp}
out=fixtures/gguf/llama-cpp

if [ ! -e "$build/READY" ]; then
    cmake -S "$src" -B "$build" -G Ninja -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
        -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
    nice -n 10 cmake --build "$build" -j2 --target llama-cli llama-server llama-bench llama-completion
    touch "$build/READY"
fi
# The same gguf-py as the llama.cpp being measured.
PYTHONPATH="$src/gguf-py" python3 fixtures/gguf/mkgguf.py "$models" --heads-only fixtures/gguf

mkdir -p "$out"
run() { # NAME CTX KVTYPE PARALLEL
    local name=$1 ctx=$2 kv=$3 np=$4
    local log="$out/$name-c$ctx-$kv-np$np.log"
    {
        echo "# llama.cpp $(git -C "$src" describe --tags 2>/dev/null || echo 'from llama-cpp-python 0.3.36 sdist'), CPU build (GGML_NATIVE=OFF)"
        echo "# llama-completion -m $name.gguf -c $ctx -ctk $kv -ctv $kv -np $np -n 1 -p hi -t 2 --no-warmup -no-cnv -lv 4"
        "$build/bin/llama-completion" -m "$models/$name.gguf" -c "$ctx" -ctk "$kv" -ctv "$kv" -np "$np" \
            -n 1 -p hi -t 2 --no-warmup -no-cnv -lv 4 2>&1 </dev/null \
            | grep -E 'buffer size|llama_kv_cache|llama_context|memory_breakdown|print_info|params_fit|offloaded|graph' || true
    } > "$log"
    echo "$log"
}
for m in llama-gqa-q4_0 qwen2-q8_0 gemma2-f16 gemma3-q4_k llama-moe-q8_0 llama-big-q4_k; do
    run "$m" 4096 f16 1
done
run llama-gqa-q4_0 8192 q8_0 1
run llama-big-q4_k 2048 q4_0 1
run gemma2-f16 4096 f16 4
run qwen2-q8_0 1000 f16 1
