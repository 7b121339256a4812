#!/usr/bin/env bash
# Installs what building and testing dataplane needs, when it is missing (Debian/Ubuntu, as root).
#   protoc  - etcd-client generates its gRPC code at build time
#   etcd    - the store tests run a real etcd
#   dig     - end-to-end DNS tests ask the server as a user would
set -euo pipefail

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v cargo >/dev/null || { echo "setup: cargo is missing: install Rust (https://rustup.rs)" >&2; exit 1; }

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Keep the etcd package from starting a system etcd on port 2379: tests start their own.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  $SUDO rm -f /usr/sbin/policy-rc.d
fi
