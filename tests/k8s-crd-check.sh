#!/usr/bin/env bash
# Strict schema validation of the custom resources against their CRDs, from
# the Go module proxy, pinned: configs/k8s/jobs/pytorchjob.yaml against
# Kubeflow's training operator, configs/k8s/kserve/*.yaml (a ServingRuntime
# and an InferenceService) against KServe's. Each CRD's openAPIV3Schema
# becomes a JSON schema that refuses unknown fields, and kubeconform
# validates the manifests with it. A copy with a misspelt field must fail,
# or the check proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
operator=github.com/kubeflow/training-operator@v1.7.0
kserve=github.com/kserve/kserve@v0.15.2
schemas=build/k8s-schemas
mkdir -p "$schemas"
module_dir() { GOFLAGS=-modcacherw go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
operator_dir=$(module_dir "$operator")
kserve_dir=$(module_dir "$kserve")
# CRD file, version, kind, group: one strict JSON schema per kind, named as kubeconform looks it up.
python3 - "$schemas" \
  "$operator_dir/manifests/base/crds/kubeflow.org_pytorchjobs.yaml" v1 PyTorchJob kubeflow.org \
  "$kserve_dir/config/crd/full/serving.kserve.io_servingruntimes.yaml" v1alpha1 ServingRuntime serving.kserve.io \
  "$kserve_dir/config/crd/full/serving.kserve.io_inferenceservices.yaml" v1beta1 InferenceService serving.kserve.io <<'PY'
import json, sys, yaml

def strict(node):
    if isinstance(node, dict):
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("anyOf", None)
            node["type"] = ["integer", "string"]
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node

out, args = sys.argv[1], sys.argv[2:]
for i in range(0, len(args), 4):
    path, version_name, kind, group = args[i:i + 4]
    crd = yaml.safe_load(open(path))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == version_name)
    schema = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version_name}"]}
    schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    json.dump(schema, open(f"{out}/{kind.lower()}_{version_name}.json", "w"))
PY
validate() {
  kubeconform -strict -summary -schema-location "$schemas/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" "$@"
}
manifests=(configs/k8s/jobs/pytorchjob.yaml configs/k8s/kserve/servingruntime.yaml
  configs/k8s/kserve/inferenceservice.yaml)
validate "${manifests[@]}"
for manifest in "${manifests[@]}"; do
  broken=$schemas/misspelt-$(basename "$manifest")
  sed 's/imagePullPolicy:/imagePulPolicy:/; s/storageUri:/storageURI:/' "$manifest" >"$broken"
  if cmp -s "$manifest" "$broken" || validate "$broken" >/dev/null 2>&1; then
    echo "k8s-crd-check: FAIL: a misspelt field in $manifest passed; the schema is not strict" >&2
    exit 1
  fi
done
echo "k8s-crd-check: ok: PyTorchJob valid against $operator's CRD, ServingRuntime and" \
  "InferenceService against $kserve's; a misspelt field is refused in each"
