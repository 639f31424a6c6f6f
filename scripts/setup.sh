#!/usr/bin/env bash
# Installs what building and testing enforcer needs on a fresh Debian 12 machine.
# Idempotent and quiet when everything is already present. Must run as root for apt.
set -euo pipefail

LLVM_MAJOR=22
# Checked on these machines (rustc 1.95, nightly 1.97 / LLVM 22); newer releases may need more.
BPF_LINKER_VERSION=0.13.0
APT_PACKAGES=(
    "llvm-${LLVM_MAJOR}-dev"      # bpf-linker links against libLLVM
    "libpolly-${LLVM_MAJOR}-dev"  # required by llvm-22-dev's cmake/link config
    "rsyslog"                     # the syslog receiver of the sink tests
    "rsyslog-openssl"             # ... over TLS
    "openssl"                     # the sink tests' certificates
    "dnsmasq-base"                # the upstream resolver of the DNS tests
)

say() { printf 'setup: %s\n' "$*" >&2; }

missing_apt=()
for pkg in "${APT_PACKAGES[@]}" "$@"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != *"install ok installed"* ]]; then
        missing_apt+=("$pkg")
    fi
done
if ((${#missing_apt[@]})); then
    if [[ $EUID -ne 0 ]]; then
        say "need root to install: ${missing_apt[*]}"
        exit 1
    fi
    say "installing apt packages: ${missing_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

# Each command's output is captured before it is searched: with pipefail, `cmd | grep -q`
# fails whenever grep exits at its first match while cmd is still writing (SIGPIPE).
if ! grep -q '^nightly' <<<"$(rustup toolchain list)"; then
    say "no nightly toolchain installed; the eBPF build needs one (rustup toolchain install nightly)"
    exit 1
fi
if ! grep -q '^rust-src' <<<"$(rustup component list --toolchain nightly --installed)"; then
    say "adding rust-src to the nightly toolchain"
    rustup component add rust-src --toolchain nightly >/dev/null
fi

# bpf-linker must be linked against the same LLVM major as the nightly's rustc (22).
linker_ok() {
    command -v bpf-linker >/dev/null 2>&1 \
        && grep -q "libLLVM.*\.so\.${LLVM_MAJOR}" <<<"$(ldd "$(command -v bpf-linker)" 2>/dev/null)"
}
if ! linker_ok; then
    say "installing bpf-linker against LLVM ${LLVM_MAJOR} (about a minute)"
    # Debian's default llvm-config on PATH is an older LLVM; point the build at llvm-22.
    LLVM_PREFIX="/usr/lib/llvm-${LLVM_MAJOR}" \
        cargo install --locked --force "bpf-linker@${BPF_LINKER_VERSION}" \
            --no-default-features --features "llvm-${LLVM_MAJOR}" --quiet
    linker_ok || { say "bpf-linker installed but not linked against LLVM ${LLVM_MAJOR}"; exit 1; }
fi
