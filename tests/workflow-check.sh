#!/usr/bin/env bash
# make workflow-check: what this machine can prove about .github/workflows/ci.yml
# without GitHub.
#   1. Placement: the test job runs `make test` in a debian:bookworm job
#      container with CATDOG_SKIP_DOCKER set; the images job runs on the VM and
#      runs docker-smoke and compose-smoke in a privileged Debian 12 container.
#   2. In an unprivileged container (what a job container is) a nested engine
#      cannot run a container, and both smoke tests skip, printing the
#      workflow's reason.
#   3. In a privileged container (what the images job starts) it can.
# Not provable here: GitHub's runner itself, actions/checkout, the registry push.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/docker-env.sh
source tests/docker-env.sh
docker_skip_if_asked workflow-check
probe=catdog-ci-probe:bookworm

log() { echo "workflow-check: $*"; }
fail() { echo "workflow-check: FAIL: $*" >&2; exit 1; }
trap docker_stop EXIT

reason=$(python3 - <<'PY'
import sys, yaml
ci = yaml.safe_load(open(".github/workflows/ci.yml"))
jobs = ci["jobs"]
test, images = jobs["test"], jobs["images"]
def runs(job):
    return "\n".join(s.get("run", "") for s in job["steps"])
problems = []
if test.get("container") != "debian:bookworm":
    problems.append("the test job is not in a debian:bookworm container")
if "make test" not in runs(test):
    problems.append("the test job does not run `make test`")
if not test.get("env", {}).get("CATDOG_SKIP_DOCKER"):
    problems.append("the test job does not set CATDOG_SKIP_DOCKER")
if "container" in images:
    problems.append("the images job runs in a container; Docker is on the VM")
if "--privileged" not in runs(images) or "docker-smoke compose-smoke" not in runs(images):
    problems.append("the images job does not run docker-smoke and compose-smoke privileged")
if images.get("needs") != "test":
    problems.append("the images job does not wait for the test job")
if problems:
    sys.exit("workflow-check: FAIL: " + "; ".join(problems))
print(test["env"]["CATDOG_SKIP_DOCKER"])
PY
)
grep -qx 'make test' .ci/run || fail ".ci/run does not run make test"
log "ok: jobs placed as intended; the test job's skip reason: $reason"

docker_start workflow-check
log "building $probe (Debian 12 with docker.io)"
docker build --network host -t "$probe" - >"$docker_root/probe-build.log" 2>&1 <<'DOCKERFILE' ||
FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io make python3 ca-certificates && rm -rf /var/lib/apt/lists/*
DOCKERFILE
  { tail -20 "$docker_root/probe-build.log"; exit 1; }

# Start an engine inside the probe, then run a container on it (a one-file image
# made from /usr/bin/true): dockerd itself may start unprivileged, but running a
# container needs the mounts and namespaces a privileged container has.
# shellcheck disable=SC2016  # expanded inside the probe container
run_nested='dockerd --data-root /engine --host unix:///tmp/d.sock --iptables=false --bridge=none >/tmp/d.log 2>&1 &
  export DOCKER_HOST=unix:///tmp/d.sock
  for _ in $(seq 20); do docker info >/dev/null 2>&1 && break; sleep 1; done
  mkdir /r && cp --parents /usr/bin/true $(ldd /usr/bin/true | grep -o "/[^ ]*") /r
  tar -C /r -c . | docker import - tiny >/dev/null && docker run --rm --network none tiny /usr/bin/true'
mkdir -p "$docker_root/probe-engine"

out=$(docker run --rm --network host -v "$PWD:/src:ro" -w /src -e CATDOG_SKIP_DOCKER="$reason" "$probe" \
  bash -c 'tests/docker-smoke.sh && tests/compose-smoke.sh')
[[ $out == *"docker-smoke: skipped: $reason"* && $out == *"compose-smoke: skipped: $reason"* ]] ||
  fail "the smoke tests did not skip in an unprivileged container: $out"
if docker run --rm --network host -v "$docker_root/probe-engine:/engine" "$probe" bash -c "$run_nested" >/dev/null 2>&1; then
  fail "an unprivileged container ran a nested container: the skip guard is not needed there"
fi
log "ok: unprivileged container: a nested engine cannot run containers; both smoke tests skip with the reason"
rm -rf "$docker_root/probe-engine"
privileged=(--privileged)
if ! docker run --rm --privileged "$probe" true >/dev/null 2>&1; then
  # Seen on sandboxes whose root lacks CAP_SYS_RESOURCE: runc cannot grant "all" caps.
  log "note: this engine cannot create --privileged containers; using its parts without CAP_SYS_RESOURCE"
  privileged=(--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined --security-opt apparmor=unconfined
    --security-opt systempaths=unconfined -v /sys/fs/cgroup:/sys/fs/cgroup:rw)
fi
docker run --rm "${privileged[@]}" --network host -v "$docker_root/probe-engine:/engine" "$probe" bash -c "$run_nested" ||
  fail "a privileged container could not run a nested container, so the images job could not either"
log "ok: privileged container: its own dockerd runs containers, as the images job needs"
