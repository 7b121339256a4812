#!/usr/bin/env bash
# Installs what building and testing dataplane needs, when it is missing (Debian/Ubuntu, as root).
#   protoc  - etcd-client generates its gRPC code at build time (with the well-known types)
#   etcd    - the store tests run a real etcd
#   dig     - end-to-end DNS tests ask the server as a user would
#   openssl - the TLS etcd tests make a throwaway CA
#   curl    - end-to-end tests read /metrics and go through VIPs as a user would
#   ip      - the load balancer tests build network namespaces and veth pairs
#   prometheus-alertmanager - alert delivery is tested against a real Alertmanager
#   schemathesis (PyPI) - a schema-driven fuzz run of the control API finds no 5xx
set -euo pipefail

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
# etcd-client's protos import google/protobuf/*.proto, which protoc's own package only recommends.
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v ip >/dev/null || missing+=(iproute2)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
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

if ! command -v schemathesis >/dev/null; then
  command -v python3 >/dev/null || { echo "setup: python3 is needed for schemathesis" >&2; exit 1; }
  echo "setup: installing schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
