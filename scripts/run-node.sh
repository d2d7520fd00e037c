#!/usr/bin/env bash
# `make run`: the appliance and the web UI in the foreground, as a node runs them
# (systemd starts them as two units there). Ctrl-C stops both; VMs keep running.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOWERBOX_CONFIG="${TOWERBOX_CONFIG:-etc/dev.toml}"
API_PORT="${TOWERBOX_API_PORT:-8443}"
UI_PORT="${TOWERBOX_UI_PORT:-8080}"
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait || true; }
# Ctrl-C or a TERM is how an operator ends `make run`: a clean stop, exit 0 (make
# would otherwise report the children's SIGTERM status, 143, as an error).
trap 'trap - EXIT; stop; exit 0' INT TERM
trap stop EXIT

.venv/bin/towerbox appliance &
pids+=($!)
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:${API_PORT}/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "the appliance did not start" >&2; exit 1; }
  sleep 0.5
done
mkdir -p var/run/ui
.venv/bin/towerbox ui --appliance-url "http://127.0.0.1:${API_PORT}" --port "${UI_PORT}" \
  --storage-dir var/run/ui &
pids+=($!)
echo "Towerbox UI: http://127.0.0.1:${UI_PORT}  (log in as admin, password in var/state/admin-password)"
rc=0
wait -n || rc=$?
echo "a Towerbox process exited (status ${rc}); stopping the other" >&2
exit "${rc}"
