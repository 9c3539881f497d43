#!/usr/bin/env bash
# A static rigdoctor (musl) for nodes whose glibc is older than 2.34 (RHEL 8,
# Ubuntu 20.04, SLES 15): the default build links glibc dynamically and needs
# GLIBC_2.34. Rust's musl target ships its own C library and start files, so
# nothing else is installed: no musl-gcc, no C toolchain beyond the linker the
# gnu build already uses.
#
#   contrib/static-build.sh            # release build: target/x86_64-unknown-linux-musl/release/rigdoctor
#   contrib/static-build.sh --debug    # quicker, for checking that it links
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
profile=release
flags=(--release)
if [ "${1:-}" = "--debug" ]; then
    profile=debug
    flags=()
fi
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target"
fi
cargo build --locked "${flags[@]}" --target "$target"
bin="target/$target/$profile/rigdoctor"
# Proof that it is what it claims: no interpreter (dynamic loader) and no
# GLIBC symbol versions, and it runs the real pipeline on a bundled rig.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    echo "static-build: $bin asks for a dynamic loader" >&2
    exit 1
fi
if readelf -V "$bin" | grep -q GLIBC_; then
    echo "static-build: $bin needs glibc symbols" >&2
    exit 1
fi
rc=0
"$bin" check --replay fixtures/rigs/b580-x4-slot --fail-on warn --quiet >/dev/null || rc=$?
if [ "$rc" -ne 1 ]; then
    echo "static-build: the replay of b580-x4-slot exited $rc, not 1" >&2
    exit 1
fi
echo "static-build: $bin ($(du -h "$bin" | cut -f1), statically linked)"
