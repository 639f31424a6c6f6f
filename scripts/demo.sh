#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (idempotent) and runs the demo: an agent under enforcement,
# showing its job succeed and every injected attack refused, live. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo xtask demo
