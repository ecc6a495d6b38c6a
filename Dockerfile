# catdog inference image: cd-serve (and cd-predict, and cd-model for the Model
# Registry: `docker run --entrypoint cd-model IMAGE list catdog`) on catdog's
# oneDNN runtime, FROM scratch: no LibTorch, no OpenCV, no OpenBLAS.
#   docker build --target runtime -t catdog .       # model mounted at run time:
#   docker run -p 8000:8000 -v "$PWD/models:/models:ro" catdog
#   docker build --target baked -t catdog:baked .   # models/model.cdm baked in
#                                                   # (run `make run` first to train it)
#   docker build --target trainer -t catdog-train . # cd-prepare and cd-train on LibTorch,
#                                                   # for the PyTorchJob in configs/k8s/jobs/
# Each compiles inside the image; `make ship` then --build-arg BINARIES=prebuilt
# takes the binaries the local build made instead (seconds, no compiler).
ARG BASE=debian:bookworm-slim

# ---- build: the binaries and exactly the shared libraries they load ----
# BINARIES=source (the default) compiles them here. BINARIES=prebuilt takes
# them from build/ship/ instead, which `make ship` fills from the build the
# tests ran (Debian 12's same packages), so the image holds what was tested:
#   make ship && docker build --build-arg BINARIES=prebuilt --target runtime -t catdog .
FROM ${BASE} AS build
ARG BINARIES=source
RUN case "$BINARIES" in \
      prebuilt) ;; \
      source) apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             build-essential cmake ninja-build pkg-config ca-certificates \
             libtorch-dev libopenblas0-openmp libopencv-dev libyaml-cpp-dev libspdlog-dev libcli11-dev \
             libcpp-httplib-dev nlohmann-json3-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libdnnl-dev \
        && rm -rf /var/lib/apt/lists/* ;; \
      *) echo "BINARIES must be source or prebuilt, not '$BINARIES'" >&2; exit 1 ;; \
    esac
WORKDIR /src
COPY CMakeLists.txt ./
COPY core core
COPY tools tools
COPY configs/docker/ship-binaries.sh /usr/local/bin/
# build/shi[p] matches nothing in a plain checkout; CMakeLists.txt keeps the
# COPY valid then. With it, build/ship's serve/ and trainer/ land in /src.
COPY CMakeLists.txt build/shi[p] /src/
# Compiled: ship the three binaries, the shared libraries they load (glibc
# too) and the little the image's users run besides them into /out, a root
# filesystem for the runtime stage (ship-binaries.sh --root).
RUN if [ "$BINARIES" = prebuilt ]; then \
      [ -x serve/usr/local/bin/cd-serve ] \
        || { echo "BINARIES=prebuilt: build/ship/ has no binaries; run make ship first" >&2; exit 1; }; \
      mv serve /out; \
    else \
      cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCATDOG_BUILD_TESTS=OFF \
      && cmake --build build -j2 --target cd-serve cd-predict cd-model \
      && ship-binaries.sh --root /out build/bin/cd-serve build/bin/cd-predict build/bin/cd-model; \
    fi

# ---- runtime: the serving image, every model on the oneDNN runtime ----
# FROM scratch: what /out holds is the whole image (about 80 MB, 120 at most,
# checked by make docker-smoke).
FROM scratch AS runtime
COPY --from=build /out/ /
# OpenMP threads must not spin while another process holds a core (PERF-NOTES.md);
# the allocator settings are each tool's own (MemoryProfile in core/util/errors.h).
ENV PATH=/usr/local/bin:/usr/bin \
    OMP_WAIT_POLICY=PASSIVE \
    CD_MODEL=/models/model.cdm \
    CD_PORT=8000 \
    CD_LOG_FORMAT=json \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8000
# Healthy only when /health answers 200 with status "healthy" (bash's /dev/tcp; no curl needed).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CD_PORT:-8000} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && r=$(cat <&3) && [[ $r == 'HTTP/1.1 200'* && $r == *'\"status\":\"healthy\"'* ]]"]
USER 10001
ENTRYPOINT ["/usr/local/bin/cd-serve"]
CMD ["--model", "/models/model.cdm", "--host", "0.0.0.0"]

# ---- baked: the runtime image with models/model.cdm inside ----
FROM runtime AS baked
COPY --chown=10001 models/model.cdm /models/model.cdm

# ---- trainer: cd-prepare and cd-train (data-parallel over c10d/Gloo) ----
# Last, so the legacy builder never builds it for the targets above.
FROM build AS build-trainer
ARG BINARIES=source
RUN if [ "$BINARIES" = prebuilt ]; then \
      [ -x trainer/usr/local/bin/cd-train ] \
        || { echo "BINARIES=prebuilt: build/ship/trainer has no cd-train; run make ship first" >&2; exit 1; }; \
      rm -rf /out && mv trainer /out; \
    else \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgloo-dev \
      && rm -rf /var/lib/apt/lists/* \
      && cmake -S . -B build -DCATDOG_BUILD_TESTS=OFF \
      && cmake --build build -j2 --target cd-prepare cd-train \
      && rm -rf /out && ship-binaries.sh /out build/bin/cd-prepare build/bin/cd-train; \
    fi

FROM ${BASE} AS trainer
COPY --from=build-trainer /out/ /
RUN ldconfig && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin catdog
ENV OMP_WAIT_POLICY=PASSIVE
USER 10001
ENTRYPOINT ["/usr/local/bin/cd-train"]
