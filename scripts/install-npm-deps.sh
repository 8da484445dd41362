#!/usr/bin/env bash
# npm peers of the tests, each installed from its committed package-lock.json:
#   tests/signing/sigstore-js      sigstore's own mock Fulcio/Rekor and the sigstore-js verifier
#   tests/attestation/dcap-qvl-js  @phala/dcap-qvl, an independent DCAP quote verifier
# Skipped when already installed from the same lock; a machine without npm or without the registry
# gets a warning and the tests that need these peers are skipped with that reason.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in "$root/tests/signing/sigstore-js" "$root/tests/attestation/dcap-qvl-js"; do
  stamp="$dir/node_modules/.package-lock.json"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
    continue
  fi
  if ! command -v npm >/dev/null; then
    echo "warning: npm not found; the npm test peers in $dir will be skipped" >&2
    continue
  fi
  echo "installing npm test peers in $dir"
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    echo "warning: npm ci failed in $dir; the tests that use it will be skipped" >&2
  fi
done
exit 0
