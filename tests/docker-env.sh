#!/usr/bin/env bash
# Sourced by docker-smoke.sh and compose-smoke.sh: a Docker engine to build and
# run on, and the base image the Dockerfiles start from.
#
# CATDOG_SKIP_DOCKER=reason skips the caller with that reason (CI's job
# container is unprivileged, so no dockerd can start there; the workflow runs
# these checks on the runner VM instead). Otherwise a private dockerd is
# started on its own socket and data root, so the machine's own engine, if
# any, is left alone. That engine's state lives outside the clone, in
# CATDOG_DOCKER_STATE (~/.cache/catdog/docker), like ccache's cache: a fresh
# clone on a machine that ran the smoke tests before finds the base image and
# the apt and pip layers of the images in its build cache. Each caller prunes
# what its build left dangling. Docker Hub is out of reach here, so
# debian:bookworm-slim is made with debootstrap and `docker import` when the
# engine lacks it; the Dockerfiles are the ones a user builds anywhere.
# Scratch files (models, logs) go to build/docker/ in the clone.

docker_root=$(pwd)/build/docker
docker_state=${CATDOG_DOCKER_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/catdog/docker}
docker_started=""

docker_skip_if_asked() {  # $1: the caller's name
  if [[ -n ${CATDOG_SKIP_DOCKER:-} ]]; then
    echo "$1: skipped: $CATDOG_SKIP_DOCKER"
    exit 0
  fi
}

docker_start() {  # $1: the caller's name, for log lines
  mkdir -p "$docker_root" "$docker_state"
  export DOCKER_HOST=unix://$docker_state/docker.sock
  if ! docker info >/dev/null 2>&1; then
    echo "$1: starting dockerd (state: $docker_state; log: $docker_root/dockerd.log)"
    # A dockerd killed with its clone leaves its pid file. One still running
    # (shutting down, or not answering yet) is waited for, never doubled.
    if [[ -f $docker_state/docker.pid ]]; then
      local old
      old=$(cat "$docker_state/docker.pid")
      for _ in $(seq 30); do kill -0 "$old" 2>/dev/null || break; sleep 1; done
      if kill -0 "$old" 2>/dev/null; then
        echo "$1: dockerd $old holds $docker_state but does not answer; stop it first" >&2
        return 1
      fi
      rm -f "$docker_state/docker.pid"
    fi
    dockerd --host "$DOCKER_HOST" --data-root "$docker_state/data" --exec-root "$docker_state/exec" \
      --pidfile "$docker_state/docker.pid" --iptables=false --ip-masq=false --bridge=none \
      >"$docker_root/dockerd.log" 2>&1 &
    docker_started=1
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 "$docker_root/dockerd.log"; return 1; }
  fi
  docker_base_image "$1"
}

docker_stop() {  # prunes dangling images; stops the engine only if docker_start started it
  docker image prune -f >/dev/null 2>&1 || true
  if [[ -n $docker_started && -f $docker_state/docker.pid ]]; then
    kill "$(cat "$docker_state/docker.pid")" 2>/dev/null || true
    for _ in $(seq 20); do [[ -f $docker_state/docker.pid ]] || break; sleep 0.5; done
  fi
}

docker_base_image() {
  docker image inspect debian:bookworm-slim >/dev/null 2>&1 && return 0
  local mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  if [[ ! -f $docker_state/bookworm-minbase.tar ]]; then
    echo "$1: debootstrap --variant=minbase bookworm from $mirror"
    rm -rf "$docker_root/rootfs"
    debootstrap --variant=minbase bookworm "$docker_root/rootfs" "$mirror" >"$docker_root/debootstrap.log" 2>&1
    rm -rf "$docker_root/rootfs/var/cache/apt/archives/"*.deb "$docker_root/rootfs/var/lib/apt/lists/"*
    tar -C "$docker_root/rootfs" -cf "$docker_state/bookworm-minbase.tar.tmp" .
    mv "$docker_state/bookworm-minbase.tar.tmp" "$docker_state/bookworm-minbase.tar"
    rm -rf "$docker_root/rootfs"
  fi
  docker import "$docker_state/bookworm-minbase.tar" debian:bookworm-slim >/dev/null
}

# The cd-serve image both smoke tests run, from the binaries the tests ran
# (`make ship` put them in build/ship/). The second build in one `make test`
# finds every layer in the engine's cache and takes seconds.
docker_build_catdog() {  # $1: caller, $2: tag
  echo "$1: docker build --build-arg BINARIES=prebuilt --target runtime -t $2"
  docker build --network host --build-arg BINARIES=prebuilt --target runtime -t "$2" . \
    >"$docker_root/build.log" 2>&1 ||
    { tail -40 "$docker_root/build.log"; return 1; }
}
