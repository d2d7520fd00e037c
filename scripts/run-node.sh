#!/usr/bin/env bash
# `make run`: the appliance and the web UI in the foreground, as a node runs them
# (systemd starts them as two units there), and beside them a local fleet registry
# with its web UI, as a central host runs them. Ctrl-C stops all; VMs keep running.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOWERBOX_CONFIG="${TOWERBOX_CONFIG:-etc/dev.toml}"
API_PORT="${TOWERBOX_API_PORT:-8443}"
UI_PORT="${TOWERBOX_UI_PORT:-8080}"
REGISTRY_PORT="${TOWERBOX_REGISTRY_SERVE_PORT:-8600}"
REGISTRY_UI_PORT="${TOWERBOX_REGISTRY_UI_PORT:-8081}"
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

# The registry keeps its database, admin password and CLI token (0600) in var/registry.
mkdir -p var/registry var/run/registry-ui
TOWERBOX_REGISTRY_CONFIG="${TOWERBOX_REGISTRY_CONFIG:-var/registry/registry.toml}" \
  TOWERBOX_REGISTRY_STATE_DIR=var/registry TOWERBOX_REGISTRY_SERVE_PORT="${REGISTRY_PORT}" \
  .venv/bin/towerbox registry serve &
pids+=($!)
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:${REGISTRY_PORT}/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "the registry did not start" >&2; exit 1; }
  sleep 0.5
done
.venv/bin/towerbox registry-ui --registry-url "http://127.0.0.1:${REGISTRY_PORT}" \
  --port "${REGISTRY_UI_PORT}" --storage-dir var/run/registry-ui &
pids+=($!)
echo "Registry API: http://127.0.0.1:${REGISTRY_PORT}  (OpenAPI: /api/schema)"
echo "Registry UI: http://127.0.0.1:${REGISTRY_UI_PORT}  (log in as admin, password in $(pwd)/var/registry/admin-password)"
# The edge agent, once this node is enrolled with a registry (`make enroll TOKEN=...`,
# also while this runs): it syncs the journal and brings the registry's documents.
(
  until [ -f var/agent/enrollment.json ]; do sleep 2; done
  echo "Edge agent: enrolled (var/agent/enrollment.json), syncing with the registry"
  exec .venv/bin/towerbox agent --agent-config etc/agent-dev.toml run
) &
pids+=($!)
[ -f var/agent/enrollment.json ] ||
  echo "Edge agent: not enrolled; create a site on the registry UI's Enrollment page, then: make enroll TOKEN=tbe_..."
rc=0
wait -n || rc=$?
echo "a Towerbox process exited (status ${rc}); stopping the others" >&2
exit "${rc}"
