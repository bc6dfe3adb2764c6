#!/usr/bin/env bash
#! Installs everything Herald's main job and tests need on a fresh Debian 12 machine (as root).
#! Idempotent: each step is skipped when what it installs is already present.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages the daemons, tests and eBPF toolchain need.
DEB_PACKAGES=(
  bird2 frr gobgpd exabgp openbgpd pmacct
  tcpdump tshark python3-scapy iproute2 iputils-ping arping ndisc6 ethtool bpftool
  curl netcat-openbsd procps psmisc bridge-utils
  llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev clang
)

install_debian_packages() {
  local missing=()
  for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages present"
    return
  fi
  log "installing Debian packages: ${missing[*]}"
  # Packaged daemons must never start as global services on this host.
  if [[ ! -x /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_rust_components() {
  if ! rustup component list --installed --toolchain stable 2>/dev/null | grep -q '^rust-src'; then
    log "adding rust-src"
    rustup component add rust-src --toolchain stable
  fi
}

install_bpf_linker() {
  if command -v bpf-linker >/dev/null && bpf-linker --version 2>/dev/null | grep -q '0\.13\.0'; then
    log "bpf-linker present"
    return
  fi
  log "building bpf-linker 0.13.0 against LLVM 22 (about 2 minutes)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install --locked bpf-linker --version 0.13.0 \
    --no-default-features --features llvm-22
}

install_debian_packages
install_rust_components
install_bpf_linker
log "done"
