#!/usr/bin/env bash
# Sourced by docker-smoke.sh and compose-smoke.sh: a Docker engine to build and
# run on, and the base image the Dockerfiles start from.
#
# CATDOG_SKIP_DOCKER=reason skips the caller with that reason (CI's job
# container is unprivileged, so no dockerd can start there; the workflow runs
# these checks on the runner VM instead). Otherwise a private dockerd is
# started on a socket and data root under build/docker/, so the machine's own
# engine, if any, is left alone. Docker Hub is out of reach here, so
# debian:bookworm-slim is made with debootstrap and `docker import` when the
# engine lacks it; the Dockerfiles are the ones a user builds anywhere.

docker_root=$(pwd)/build/docker
docker_started=""

docker_skip_if_asked() {  # $1: the caller's name
  if [[ -n ${CATDOG_SKIP_DOCKER:-} ]]; then
    echo "$1: skipped: $CATDOG_SKIP_DOCKER"
    exit 0
  fi
}

docker_start() {  # $1: the caller's name, for log lines
  mkdir -p "$docker_root"
  export DOCKER_HOST=unix://$docker_root/docker.sock
  if ! docker info >/dev/null 2>&1; then
    echo "$1: starting dockerd (log: $docker_root/dockerd.log)"
    dockerd --host "$DOCKER_HOST" --data-root "$docker_root/data" --exec-root "$docker_root/exec" \
      --pidfile "$docker_root/docker.pid" --iptables=false --ip-masq=false --bridge=none \
      >"$docker_root/dockerd.log" 2>&1 &
    docker_started=1
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 "$docker_root/dockerd.log"; return 1; }
  fi
  docker_base_image "$1"
}

docker_stop() {  # stops the engine only if docker_start started it
  if [[ -n $docker_started && -f $docker_root/docker.pid ]]; then
    kill "$(cat "$docker_root/docker.pid")" 2>/dev/null || true
    for _ in $(seq 20); do [[ -f $docker_root/docker.pid ]] || break; sleep 0.5; done
  fi
}

docker_base_image() {
  docker image inspect debian:bookworm-slim >/dev/null 2>&1 && return 0
  local mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  if [[ ! -f $docker_root/bookworm-minbase.tar ]]; then
    echo "$1: debootstrap --variant=minbase bookworm from $mirror"
    rm -rf "$docker_root/rootfs"
    debootstrap --variant=minbase bookworm "$docker_root/rootfs" "$mirror" >"$docker_root/debootstrap.log" 2>&1
    rm -rf "$docker_root/rootfs/var/cache/apt/archives/"*.deb "$docker_root/rootfs/var/lib/apt/lists/"*
    tar -C "$docker_root/rootfs" -cf "$docker_root/bookworm-minbase.tar" .
    rm -rf "$docker_root/rootfs"
  fi
  docker import "$docker_root/bookworm-minbase.tar" debian:bookworm-slim >/dev/null
}

# The cd-serve image both smoke tests run. The second build in one `make test`
# finds every layer in the engine's cache and takes seconds.
docker_build_catdog() {  # $1: caller, $2: tag
  echo "$1: docker build --target runtime -t $2"
  docker build --network host --target runtime -t "$2" . >"$docker_root/build.log" 2>&1 ||
    { tail -40 "$docker_root/build.log"; return 1; }
}
