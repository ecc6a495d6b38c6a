#!/usr/bin/env bash
# Smoke test for a running cd-serve, wherever it is: local, a container, a cluster.
# Usage: tests/smoke.sh URL [PHOTO]     e.g. tests/smoke.sh http://127.0.0.1:8000
# Honours CD_API_KEY. Exits non-zero on the first failed check.
set -euo pipefail
url=${1:?usage: smoke.sh URL [PHOTO]}
url=${url%/}
photo=${2:-$(dirname "$0")/fixtures/photos/dog.1.jpg}
auth=()
if [[ -n ${CD_API_KEY:-} ]]; then auth=(-H "Authorization: Bearer $CD_API_KEY"); fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
check() {  # name expected-status curl-args...
  local name=$1 want=$2
  shift 2
  local got
  got=$(curl -sS -o "$tmp/body" -w '%{http_code}' --max-time 30 "$@") || fail "$name: no answer"
  [[ $got == "$want" ]] || fail "$name: HTTP $got, expected $want: $(head -c 300 "$tmp/body")"
  echo "smoke: ok: $name ($got)"
}

check "/health" 200 "$url/health"
grep -q '"status":"healthy"' "$tmp/body" || fail "/health body: $(cat "$tmp/body")"
check "/ready" 200 "$url/ready"
check "/predict with a photo" 200 "${auth[@]}" -F "file=@$photo;type=image/jpeg" "$url/predict"
grep -Eq '"class_label":"(cat|dog)"' "$tmp/body" || fail "/predict body: $(cat "$tmp/body")"
grep -q '"probability":' "$tmp/body" || fail "/predict has no probability"
echo "not an image" > "$tmp/note.txt"
check "/predict with a text file" 400 "${auth[@]}" -F "file=@$tmp/note.txt;type=text/plain" "$url/predict"
echo "smoke: all checks passed against $url"
