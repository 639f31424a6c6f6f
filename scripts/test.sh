#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotent) and runs every check and test: formatting,
# clippy (userspace and eBPF), unit tests, and the privileged integration tests one at a time.
# Run as root: without root the privileged tests skip, each saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

# The build, the static build for the VM guests and the kernels take about 3 GiB under target/,
# and setup about 1.5 GiB more. A disk that fills midway kills cargo and, often, the log that
# would have said so: check first, and say where the space went if it fails anyway.
NEED_GIB=5
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
free_kib=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
free_gib=$((free_kib / 1024 / 1024))
printf 'test: %s GiB free on the filesystem of %s\n' "$free_gib" "$target_dir" >&2
if ((free_kib < NEED_GIB * 1024 * 1024)); then
    printf 'test: need at least %s GiB free there; free some space or set CARGO_TARGET_DIR to a larger filesystem\n' \
        "$NEED_GIB" >&2
    df -h "$target_dir" >&2
    exit 1
fi

bash scripts/setup.sh
# No incremental caches: they are half a GiB that a one-shot run never reuses.
export CARGO_INCREMENTAL=0
status=0
cargo xtask test || status=$?
if ((status != 0)); then
    printf '\ntest: FAILED (exit %s); disk at the end:\n' "$status" >&2
    df -h "$target_dir" >&2 || true
fi
exit "$status"
