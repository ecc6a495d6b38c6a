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
    --live "$model_dir/live" --architecture darknet --second-backbone "" \
    --pretrained data/pretrained/darknet-tiny-imagenet \
    --mode frozen --input-size 160 --frozen-views 1 --epochs 15 --log-level warn
}
chmod -R a+rX "$model_dir"

docker_build_catdog docker-smoke "$image"
# The same image serves the model exported to ONNX.
build/bin/cd-export --model "$model_dir/model.cdm" --output "$model_dir/model.onnx" --log-level warn
chmod a+r "$model_dir/model.onnx"

# Runs one image on the model folder: /ready, the service's own smoke test,
# the HEALTHCHECK, the user, and a clean exit on SIGTERM.
smoke_image() {  # image model-file
  local image=$1 model=$2 start ready="" health="" user code size
  size=$(docker image inspect --format '{{.Size}}' "$image")
  start=$(date +%s.%N)
  docker run -d --name catdog-smoke --network host --read-only --health-interval 2s \
    --health-start-period 60s -e CD_PORT="$port" -v "$model_dir:/models:ro" "$image" \
    --model "/models/$model" --host 127.0.0.1 >/dev/null
  for _ in $(seq 600); do
    if curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then ready=$(date +%s.%N); break; fi
    sleep 0.1
  done
  [[ -n $ready ]] || { docker logs catdog-smoke | tail -20; return 1; }
  tests/smoke.sh "http://127.0.0.1:$port"
  for _ in $(seq 60); do
    health=$(docker inspect --format '{{.State.Health.Status}}' catdog-smoke)
    [[ $health == healthy ]] && break
    sleep 1
  done
  [[ $health == healthy ]] || { log "$image: HEALTHCHECK says $health"; return 1; }
  user=$(docker inspect --format '{{.Config.User}}' "$image")
  [[ $user == 10001 ]] || { log "$image runs as '$user', expected 10001"; return 1; }
  docker stop -t 30 catdog-smoke >/dev/null
  code=$(docker inspect --format '{{.State.ExitCode}}' catdog-smoke)
  docker rm -f catdog-smoke >/dev/null
  [[ $code == 0 ]] || { log "$image: cd-serve exited $code on SIGTERM"; return 1; }
  printf 'docker-smoke: image %s (%s): %.0f MB; start to /ready %.2f s; HEALTHCHECK healthy; SIGTERM exit 0\n' \
    "$image" "$model" "$(echo "$size / 1000000" | bc -l)" "$(echo "$ready - $start" | bc -l)"
}
smoke_image "$image" model.cdm
smoke_image "$image" model.onnx

# The serving image: FROM scratch, at most 120 MB, no LibTorch, GDAL, OpenCV
# or BLAS inside; its cd-predict answers, and the shell line of the
# batch Job (configs/k8s/jobs/predict-job.yaml) and the preStop hook's sleep run.
image_mb=$(( $(docker image inspect --format '{{.Size}}' "$image") / 1000000 ))
(( image_mb <= 120 )) || { log "$image is $image_mb MB, over 120 MB"; exit 1; }
libs=$(docker run --rm --entrypoint /bin/ls "$image" /usr/lib/x86_64-linux-gnu /usr/local/bin)
if grep -Ei 'torch|gdal|opencv|blas|lapack' <<<"$libs"; then log "$image ships the files above"; exit 1; fi
answer=$(docker run --rm --network none --read-only --entrypoint /bin/bash \
  -v "$model_dir:/models:ro" -v "$PWD/tests/fixtures/photos:/photos:ro" --tmpfs /data "$image" -c \
  'mkdir -p /data/out && cd-predict --model /models/model.cdm /photos/cat.1.jpg /photos/dog.1.jpg \
     > /data/out/part.tmp && mv /data/out/part.tmp /data/out/part.tsv && sleep 0.1 && cat /data/out/part.tsv')
[[ $(grep -c $'\t' <<<"$answer") == 2 ]] || { log "cd-predict in $image said: $answer"; exit 1; }
log "image: $image_mb MB, no LibTorch, GDAL, OpenCV or BLAS; the Job's shell line answered: $(tr '\n' ' ' <<<"$answer")"
# cd-model (the CD workflow's promote and rollback) runs from the serving image:
# with no tracking server named it stops with a usage error saying which.
code=0
said=$(docker run --rm --network none --entrypoint /usr/local/bin/cd-model "$image" list catdog 2>&1) || code=$?
[[ $code == 2 && $said == *MLFLOW_TRACKING_URI* ]] || { log "cd-model exited $code: $said"; exit 1; }
log "image: cd-model runs (no tracking server: exit 2 naming MLFLOW_TRACKING_URI)"
