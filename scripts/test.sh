#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotent) and runs every check and test: formatting,
# clippy (userspace and eBPF), unit tests, and the privileged integration tests one at a time.
# Run as root: without root the privileged tests skip, each saying why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo xtask test
