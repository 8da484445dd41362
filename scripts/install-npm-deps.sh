#!/usr/bin/env bash
# npm peers of the tests (tests/signing/sigstore-js: sigstore's own mock Fulcio/Rekor and the
# sigstore-js verifier), installed from the committed package-lock.json. Skipped when already
# installed from the same lock; a machine without npm or without the registry gets a warning and
# the tests that need these peers are skipped with that reason.
set -uo pipefail

dir="$(cd "$(dirname "$0")/.." && pwd)/tests/signing/sigstore-js"
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "warning: npm not found; sigstore-js interop tests will be skipped" >&2
  exit 0
fi
echo "installing npm test peers in $dir"
if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
  echo "warning: npm ci failed in $dir; sigstore-js interop tests will be skipped" >&2
fi
exit 0
