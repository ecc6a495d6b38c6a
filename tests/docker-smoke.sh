#!/usr/bin/env bash
# make docker-smoke: build the image with a real Docker engine, run it, smoke-test it.
# The engine and the base image come from tests/docker-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/docker-env.sh
source tests/docker-env.sh
docker_skip_if_asked docker-smoke
root=$docker_root
image=catdog:smoke
port=${SMOKE_PORT:-18765}

log() { echo "docker-smoke: $*"; }
cleanup() {
  docker rm -f catdog-smoke >/dev/null 2>&1 || true
  docker_stop
}
trap cleanup EXIT
docker_start docker-smoke

# A model to serve, trained by this build on the committed sample (seconds).
model_dir=$root/model
rm -rf "$model_dir"
mkdir -p "$model_dir"
log "training a small model on the committed sample"
{
  build/bin/cd-prepare --source data/sample/images --output "$root/prepared" --log-level warn
  build/bin/cd-train --data "$root/prepared" --output "$model_dir" --metrics "$model_dir/train.json" \
    --live "$model_dir/live" --architecture darknet --pretrained data/pretrained/darknet-tiny-imagenet \
    --mode frozen --input-size 160 --frozen-views 1 --epochs 15 --log-level warn
}
chmod -R a+rX "$model_dir"

docker_build_catdog docker-smoke "$image"
size=$(docker image inspect --format '{{.Size}}' "$image")

start=$(date +%s.%N)
docker run -d --name catdog-smoke --network host --read-only --health-interval 2s --health-start-period 60s \
  -e CD_PORT="$port" -v "$model_dir:/models:ro" "$image" >/dev/null
ready=""
for _ in $(seq 600); do
  if curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ready=$(date +%s.%N); break; fi
  sleep 0.1
done
[[ -n $ready ]] || { docker logs catdog-smoke | tail -20; exit 1; }
tests/smoke.sh "http://127.0.0.1:$port"
health=""
for _ in $(seq 60); do
  health=$(docker inspect --format '{{.State.Health.Status}}' catdog-smoke)
  [[ $health == healthy ]] && break
  sleep 1
done
[[ $health == healthy ]] || { log "HEALTHCHECK says $health"; exit 1; }
user=$(docker inspect --format '{{.Config.User}}' "$image")
[[ $user == 10001 ]] || { log "image runs as '$user', expected 10001"; exit 1; }
docker stop -t 30 catdog-smoke >/dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' catdog-smoke)
[[ $code == 0 ]] || { log "cd-serve exited $code on SIGTERM"; exit 1; }
printf 'docker-smoke: image %s: %.0f MB (the original image was 1.2 GB); start to /ready %.2f s; HEALTHCHECK healthy; SIGTERM exit 0\n' \
  "$image" "$(echo "$size / 1000000" | bc -l)" "$(echo "$ready - $start" | bc -l)"
