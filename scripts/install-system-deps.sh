#!/usr/bin/env bash
# Debian packages the tests use as real peers: CNCF distribution, skopeo, PostgreSQL, Chromium,
# and the Rust toolchain with the wasm32-wasi standard library (for the Rust example).
set -euo pipefail

need=()
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)  # tests/registry/test_clients.py pulls with it
command -v docker-registry >/dev/null || need+=(docker-registry)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v wrk >/dev/null || need+=(wrk)  # load client: bench/registry.py, bench/network.py, tests/network
command -v curl >/dev/null || need+=(curl)  # tests/network drives the example servers with it
[ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] || need+=(rustc cargo)
ls /usr/lib/rustlib/wasm32-wasi >/dev/null 2>&1 || need+=(libstd-rust-dev-wasm32)
command -v swift-proxy-server >/dev/null || need+=(swift swift-proxy swift-object swift-container swift-account)  # S3 store for tests
[ -e "$(readlink -f /usr/bin/rust-lld 2>/dev/null || echo /nonexistent)" ] || need+=(lld-14)  # rustc's wasm linker

command -v npm >/dev/null || need+=(npm)  # npm test peers: sigstore-js, @phala/dcap-qvl (installed below)

trap 'bash "$(dirname "$0")/install-npm-deps.sh"' EXIT
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
