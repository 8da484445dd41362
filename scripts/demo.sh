#!/usr/bin/env bash
# make demo: the main job end to end on embedded defaults, all on loopback.
#   registry (SQLite + files) + sim host agent -> build examples/wat -> sign -> encrypt -> publish
#   -> policy pinning the sim key and measurement -> deploy (attest, seal, run) -> output -> stop.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
EP="$BIN/enarx-pkg"
DEMO=.demo
rm -rf "$DEMO"
mkdir -p "$DEMO"
export XDG_CONFIG_HOME="$PWD/$DEMO/config"   # keep the demo's registry login out of your own config
export ENARX_PKG_KEY_PASSWORD=""             # demo keys are unencrypted

free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # URL [TOKEN]
  for _ in $(seq 1 600); do   # up to a minute: a loaded machine starts Python slowly
    if "$BIN/python" - "$@" <<'PY' 2>/dev/null; then return 0; fi
import sys, httpx
h = {"Authorization": f"Bearer {sys.argv[2]}"} if len(sys.argv) > 2 else {}
sys.exit(0 if httpx.get(sys.argv[1], headers=h, timeout=5).status_code < 500 else 1)
PY
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2; return 1
}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

REG_PORT=$(free_port); HOST_PORT=$(free_port)
REG=127.0.0.1:$REG_PORT

echo "== 1. registry (SQLite + files in $DEMO/registry) on $REG"
"$EP" registry serve --data "$DEMO/registry" --port "$REG_PORT" >"$DEMO/registry.log" 2>&1 &
PIDS+=($!)
wait_for "http://$REG/v2/"
PUSH_TOKEN=$("$EP" registry token create --data "$DEMO/registry" --name demo-ci --scope 'push:demo/*' | tail -n1)
printf '%s' "$PUSH_TOKEN" | "$EP" login "$REG" -u demo --password-stdin >/dev/null

echo "== 2. sim host agent on 127.0.0.1:$HOST_PORT"
"$EP" host serve --backend sim --listen "127.0.0.1:$HOST_PORT" --data "$DEMO/host" >"$DEMO/host.log" 2>&1 &
PIDS+=($!)
until [ -s "$DEMO/host/agent-token" ]; do sleep 0.1; done
wait_for "http://127.0.0.1:$HOST_PORT/v1/platform" "$(cat "$DEMO/host/agent-token")"
sed "/token file:/q" "$DEMO/host.log"   # the banner; its access log stays in the file

echo "== 3. build examples/wat"
"$EP" build examples/wat -o "$DEMO/oci"

echo "== 4. keys: a signing key, and the key the package is encrypted for"
"$EP" keys generate --out "$DEMO/signer" >/dev/null
"$EP" keys generate --out "$DEMO/recipient" >/dev/null

echo "== 5. encrypt (ocicrypt layers), then sign the ENCRYPTED manifest, then publish"
"$EP" encrypt "$DEMO/oci" --recipient "$DEMO/recipient.pub" --output "$DEMO/oci-enc"
"$EP" sign "$DEMO/oci-enc" --key "$DEMO/signer.key"
"$EP" publish "$DEMO/oci-enc" --registry "$REG" --repository demo/hello --tag 0.1.0

echo "== 6. policy pinning this host's sim key and keep measurement"
MEASUREMENT=$(awk '/measurement:/ {print $2}' "$DEMO/host.log")
SIMKEY=$(awk '/sim key:/ {print $3}' "$DEMO/host.log")
cat >"$DEMO/policy.toml" <<TOML
tees = ["sim"]

[sim]
insecure = true   # sim keeps are software only: development and demos
keys = ["$SIMKEY"]
measurements = ["$MEASUREMENT"]
TOML
cat "$DEMO/policy.toml"

echo "== 7. deploy: verify signature, attest the keep, seal keys to it, run, sealed output back"
set +e
"$EP" deploy "$REG/demo/hello:0.1.0" --host "http://127.0.0.1:$HOST_PORT" \
  --host-token-file "$DEMO/host/agent-token" --policy "$DEMO/policy.toml" \
  --key "$DEMO/signer.pub" --decryption-key "$DEMO/recipient.key" --insecure-sim -- --name demo
STATUS=$?
set -e
echo "== workload exit status: $STATUS"
exit "$STATUS"
