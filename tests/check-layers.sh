#!/usr/bin/env bash
# Enforces the include rules drawn in ARCHITECTURE.md: every arrow points
# down (tools -> nn -> runtime -> domain -> util, registry -> domain;
# cd-serve -> cd-serve/http -> util), no tool includes another tool's
# engine, LibTorch stays out of util/, domain/, cd-prepare, cd-predict and
# cd-serve, imgcodecs out of everything that predicts, only the
# two HTTP clients of the tree see cpp-httplib, and only cd-export sees libonnx.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

# allowed <folder> <include prefixes it may use>
allowed() {
  local folder=$1; shift
  local pattern
  pattern=$(printf '%s|' "$@")
  pattern=${pattern%|}
  local bad
  bad=$(grep -HnE '^#include "[a-z-]+/' "$folder"/*.h "$folder"/*.cpp 2>/dev/null |
        grep -vE "#include \"($pattern)/" || true)
  if [ -n "$bad" ]; then
    echo "layering: $folder may include only $*:"
    echo "$bad"
    status=1
  fi
}

forbid() {  # forbid <regex> <description> <files...>
  local regex=$1 what=$2; shift 2
  local bad
  bad=$(grep -HnE "$regex" "$@" 2>/dev/null || true)
  if [ -n "$bad" ]; then
    echo "layering: $what:"
    echo "$bad"
    status=1
  fi
}

allowed core/util util
allowed core/domain util domain
allowed core/runtime util domain runtime
allowed core/registry util domain registry
allowed core/nn util domain runtime nn
for tool in tools/cd-*; do
  allowed "$tool" util domain runtime registry nn "$(basename "$tool")"
done
# cd-predict and cd-serve load LibTorch only through the runtime module: no core/nn.
allowed tools/cd-predict util domain runtime cd-predict
allowed tools/cd-serve util domain runtime registry cd-serve
# cd-serve's HTTP stack (cd::http) sits below the service: util and itself only.
allowed tools/cd-serve/http util cd-serve/http
allowed tools/cd-model util domain registry cd-model

forbid '#include <(torch|ATen|c10)/' "LibTorch outside core/nn and the torch-using tools" \
  core/util/* core/domain/* core/runtime/* core/registry/* tools/cd-prepare/* tools/cd-predict/* \
  tools/cd-serve/* tools/cd-serve/http/* tools/cd-model/*
forbid '#include <opencv2/imgcodecs' "OpenCV's imgcodecs (GDAL and all) in the core or the tools that predict" \
  core/*/* tools/cd-predict/* tools/cd-serve/* tools/cd-serve/http/*
mapfile -t sources < <(git ls-files 'core/*' 'tools/*' |
  grep -vE '^(tools/cd-serve/http/exchange\.cpp|tools/cd-train/mlflow\.cpp|core/registry/mlflow\.cpp)$')
forbid '#include <httplib.h>' "cpp-httplib outside cd-serve's exchange.cpp and the MLflow clients" \
  "${sources[@]}"
mapfile -t not_export < <(git ls-files 'core/*' 'tools/*' | grep -v '^tools/cd-export/')
forbid '#include <onnx/' "libonnx outside cd-export" "${not_export[@]}"

[ "$status" = 0 ] && echo "layering: ok"
exit "$status"
