#!/usr/bin/env bash
# make compose-smoke: bring docker-compose.yml up on a real Docker engine and
# check it as an operator would:
#   - `make compose-train` logs a run to the composed MLflow (REST API checked);
#   - cd-serve serves that model; the original service's smoke test passes;
#   - Prometheus scrapes cd-serve (target up), loaded catdog's rules, and
#     holds its series (Prometheus's HTTP API);
#   - a real incident: cd-serve is stopped, CatdogDown fires, Alertmanager
#     routes it to the page receiver and the webhook gets it; cd-serve is
#     started again and the webhook gets the resolution, and nothing is left
#     firing in Prometheus or active in Alertmanager;
# then brings the stack down with its volumes. The engine, the base image and
# the cd-serve image (shared with docker-smoke) come from tests/docker-env.sh.
#
# The incident is two minutes of waiting on Prometheus's clock. `make test`
# sets COMPOSE_SMOKE_DETACH=1: the script then returns once the incident has
# begun, the incident's checks (the page, the recovery, the resolution, quiet
# again) and the teardown run on in the background, logged to build/docker/compose-incident.log, while the next
# stages run; `tests/compose-smoke.sh --wait` waits for it, prints that log and
# exits with its status.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/docker-env.sh
source tests/docker-env.sh
docker_skip_if_asked compose-smoke
root=$docker_root
export COMPOSE_PROJECT_NAME=catdog-smoke
export CATDOG_IMAGE=catdog:smoke
export CATDOG_PORT=${COMPOSE_SERVE_PORT:-18766}
export PROMETHEUS_PORT=${COMPOSE_PROMETHEUS_PORT:-18767}
export MLFLOW_PORT=${COMPOSE_MLFLOW_PORT:-18768}
export ALERTMANAGER_PORT=${COMPOSE_ALERTMANAGER_PORT:-18769}
export ALERT_WEBHOOK_PORT=${COMPOSE_ALERT_WEBHOOK_PORT:-18770}
export CATDOG_MODELS=$root/compose-models
mlflow_version=$(sed -n 's/^ *MLFLOW_VERSION: "\(.*\)"/\1/p' docker-compose.yml)
wheels=configs/compose/mlflow/wheels
started=$(date +%s)
incident_log=$root/compose-incident.log
incident_rc=$root/compose-incident.rc
incident_pid=$root/compose-incident.pid

if [[ ${1:-} == --wait ]]; then
  for _ in $(seq 900); do
    [[ -f $incident_rc ]] && break
    if [[ ! -f $incident_pid ]] || ! kill -0 "$(cat "$incident_pid")" 2>/dev/null; then
      sleep 1  # it may have written its status just now
      [[ -f $incident_rc ]] && break
      echo "compose-smoke: FAIL: no incident is running and none has ended: run COMPOSE_SMOKE_DETACH=1 tests/compose-smoke.sh first" >&2
      exit 1
    fi
    sleep 1
  done
  [[ -f $incident_rc ]] || { echo "compose-smoke: FAIL: the incident has not ended in 900 s" >&2; exit 1; }
  if [[ -f $incident_log ]]; then cat "$incident_log"; else echo "compose-smoke: FAIL: it failed before the incident began (see compose-smoke-start's output)" >&2; fi
  exit "$(cat "$incident_rc")"
fi
detach=${COMPOSE_SMOKE_DETACH:-}
[[ -n $detach ]] && rm -f "$incident_log" "$incident_rc" "$incident_pid"

log() { echo "compose-smoke: $*"; }
fail() { echo "compose-smoke: FAIL: $*" >&2; exit 1; }
cleanup() {
  local rc=$?
  if [[ $rc != 0 ]]; then docker-compose logs --tail 30 2>&1 | tail -90 || true; fi
  docker-compose down -v --remove-orphans >/dev/null 2>&1 || true
  docker_stop
  if [[ -n $detach ]]; then echo "$rc" >"$incident_rc.tmp" && mv "$incident_rc.tmp" "$incident_rc"; fi
  exit "$rc"
}
trap cleanup EXIT
# GET a URL until it answers 200 or $2 seconds pass; the body goes to stdout.
wait_get() {
  local deadline=$(($(date +%s) + $2))
  while (($(date +%s) < deadline)); do
    if curl -sf --max-time 5 "$1"; then return 0; fi
    sleep 1
  done
  return 1
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

docker_start compose-smoke
docker_build_catdog compose-smoke "$CATDOG_IMAGE"
if ! ls "$wheels"/mlflow-"$mlflow_version"-*.whl >/dev/null 2>&1; then
  log "pip download mlflow==$mlflow_version into $wheels (the image installs from there)"
  pip download -q --disable-pip-version-check --dest "$wheels" "mlflow==$mlflow_version"
fi
log "docker-compose build prometheus mlflow"
docker-compose build prometheus mlflow >"$root/compose-build.log" 2>&1 || { tail -40 "$root/compose-build.log"; exit 1; }

log "docker-compose up mlflow"
docker-compose up -d mlflow
wait_get "http://127.0.0.1:$MLFLOW_PORT/health" 120 >/dev/null || fail "MLflow never answered /health"

# The documented trainer, pointed at the composed MLflow, on the committed sample.
rm -rf "$CATDOG_MODELS" "$root/compose-prepared"
build/bin/cd-prepare --source data/sample/images --output "$root/compose-prepared" --log-level warn
make --no-print-directory compose-train MLFLOW_URI="http://127.0.0.1:$MLFLOW_PORT" \
  COMPOSE_TRAIN_DATA="$root/compose-prepared" COMPOSE_MODELS="$CATDOG_MODELS" \
  COMPOSE_TRAIN_ARGS="--experiment compose-smoke --input-size 160 --frozen-views 1 --epochs 10 --log-level warn"
chmod -R a+rX "$CATDOG_MODELS"
experiment=$(curl -sf "http://127.0.0.1:$MLFLOW_PORT/api/2.0/mlflow/experiments/get-by-name?experiment_name=compose-smoke" |
  json 'd["experiment"]["experiment_id"]') || fail "no experiment compose-smoke in MLflow"
runs=$(curl -sf -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$MLFLOW_PORT/api/2.0/mlflow/runs/search" \
  -d "{\"experiment_ids\": [\"$experiment\"]}")
status=$(json 'd["runs"][0]["info"]["status"]' <<<"$runs")
val_loss=$(json '[m["value"] for m in d["runs"][0]["data"]["metrics"] if m["key"] == "val_loss"][0]' <<<"$runs")
[[ $status == FINISHED ]] || fail "MLflow run status $status"
log "ok: MLflow run FINISHED in experiment $experiment, val_loss $val_loss"

log "docker-compose up (cd-serve, prometheus, alertmanager, alert-webhook)"
docker-compose up -d
wait_get "http://127.0.0.1:$CATDOG_PORT/ready" 120 >/dev/null || fail "cd-serve never became ready"
tests/smoke.sh "http://127.0.0.1:$CATDOG_PORT"

prom=http://127.0.0.1:$PROMETHEUS_PORT
wait_get "$prom/-/ready" 120 >/dev/null || fail "Prometheus never became ready"
health=""
for _ in $(seq 90); do
  health=$(curl -sf "$prom/api/v1/targets?state=active" |
    json '",".join(t["health"] for t in d["data"]["activeTargets"] if t["labels"]["job"] == "catdog")' || true)
  [[ $health == up ]] && break
  sleep 1
done
[[ $health == up ]] || fail "Prometheus's catdog target is '$health', not up"
log "ok: Prometheus scrapes cd-serve (target up)"
groups=$(curl -sf "$prom/api/v1/rules" | json '" ".join(sorted(g["name"] for g in d["data"]["groups"]))')
[[ $groups == "catdog.alerts catdog.recording" ]] || fail "Prometheus loaded rule groups '$groups'"
predictions=$(curl -sf "$prom/api/v1/query" --data-urlencode 'query=sum(catdog_http_requests_total{route="/predict",code="200"})' |
  json 'd["data"]["result"][0]["value"][1]')
[[ $predictions -ge 1 ]] || fail "Prometheus holds $predictions /predict requests"
firing=$(curl -sf "$prom/api/v1/alerts" | json '" ".join(a["labels"]["alertname"] for a in d["data"]["alerts"] if a["state"] == "firing")')
[[ -z $firing ]] || fail "alerts firing on a healthy stack: $firing"
health=$(docker inspect --format '{{.State.Health.Status}}' "$(docker-compose ps -q cd-serve)")
log "ok: rule groups loaded ($groups), $predictions predictions scraped, no alert firing; cd-serve container $health"

# The incident. Prometheus scrapes and evaluates every 15 s and CatdogDown
# waits 1 m, so the page arrives about 1.5 m after the stop; the resolution
# follows the next healthy scrape and Alertmanager's 30 s group interval.
am=http://127.0.0.1:$ALERTMANAGER_PORT
hook=http://127.0.0.1:$ALERT_WEBHOOK_PORT
wait_get "$am/-/ready" 60 >/dev/null || fail "Alertmanager never became ready"
wait_get "$hook/health" 60 >/dev/null || fail "the alert webhook never answered"
ams=""
for _ in $(seq 60); do
  ams=$(curl -sf "$prom/api/v1/alertmanagers" | json '" ".join(a["url"] for a in d["data"]["activeAlertmanagers"])' || true)
  [[ -n $ams ]] && break
  sleep 1
done
[[ $ams == *alertmanager:9093* ]] || fail "Prometheus knows no Alertmanager ('$ams')"
# notified STATUS: the page receiver's notifications for CatdogDown with that status.
notified() {
  curl -sf "$hook/notifications" | json "sum(1 for n in d if n['path'] == '/page' and n['status'] == '$1'
    and any(a['alertname'] == 'CatdogDown' for a in n['alerts']))"
}
[[ $(notified firing) == 0 ]] || fail "the webhook got a CatdogDown page before the incident"

incident() {
  incident=$(date +%s)
  log "incident: docker-compose stop cd-serve"
  docker-compose stop cd-serve >/dev/null 2>&1
  for _ in $(seq 240); do [[ $(notified firing) -ge 1 ]] && break; sleep 1; done
  [[ $(notified firing) -ge 1 ]] || fail "no CatdogDown page reached the webhook in 240 s; alerts: $(curl -sf "$prom/api/v1/alerts")"
  log "ok: CatdogDown paged through Alertmanager to the webhook $(($(date +%s) - incident)) s after the stop"
  docker-compose start cd-serve >/dev/null 2>&1
  wait_get "http://127.0.0.1:$CATDOG_PORT/ready" 120 >/dev/null || fail "cd-serve never became ready again"
  recovered=$(date +%s)
  for _ in $(seq 240); do [[ $(notified resolved) -ge 1 ]] && break; sleep 1; done
  [[ $(notified resolved) -ge 1 ]] || fail "CatdogDown's resolution never reached the webhook in 240 s"
  firing=$(curl -sf "$prom/api/v1/alerts" | json '" ".join(a["labels"]["alertname"] for a in d["data"]["alerts"])')
  [[ -z $firing ]] || fail "alerts still pending or firing after recovery: $firing"
  active=$(curl -sf "$am/api/v2/alerts?active=true&silenced=false&inhibited=true" | json 'len(d)')
  [[ $active == 0 ]] || fail "Alertmanager still holds $active active alerts after recovery"
  log "ok: resolved notification $(($(date +%s) - recovered)) s after recovery; quiet again (no alert in Prometheus or Alertmanager)"
  log "passed in $(($(date +%s) - started)) s"
}

if [[ -z $detach ]]; then
  incident
  exit 0
fi
# The foreground is done: the background takes over the incident and the teardown.
trap - EXIT
(trap cleanup EXIT; incident) </dev/null >"$incident_log" 2>&1 &
echo $! >"$incident_pid"
disown
log "the incident goes on in the background (log: $incident_log); tests/compose-smoke.sh --wait reports it"
