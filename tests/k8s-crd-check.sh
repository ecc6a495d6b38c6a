#!/usr/bin/env bash
# Strict schema validation of configs/k8s/jobs/pytorchjob.yaml against the
# PyTorchJob CRD of Kubeflow's training operator (the module comes from the Go
# module proxy, pinned): the CRD's openAPIV3Schema becomes a JSON schema that
# refuses unknown fields, and kubeconform validates the manifest with it. A
# copy with a misspelt field must fail, or the check proves nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
operator=github.com/kubeflow/training-operator@v1.7.0
schemas=build/k8s-schemas
mkdir -p "$schemas"
dir=$(GOFLAGS=-modcacherw go mod download -json "$operator" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
crd=$dir/manifests/base/crds/kubeflow.org_pytorchjobs.yaml
python3 - "$crd" "$schemas/pytorchjob_v1.json" <<'PY'
import json, sys, yaml

crd = yaml.safe_load(open(sys.argv[1]))
version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")

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

schema = strict(version["schema"]["openAPIV3Schema"])
schema["properties"]["apiVersion"] = {"type": "string", "enum": ["kubeflow.org/v1"]}
schema["properties"]["kind"] = {"type": "string", "enum": ["PyTorchJob"]}
schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
json.dump(schema, open(sys.argv[2], "w"))
PY
validate() {
  kubeconform -strict -summary -schema-location "$schemas/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" "$@"
}
validate configs/k8s/jobs/pytorchjob.yaml
broken=$schemas/pytorchjob-misspelt.yaml
sed 's/imagePullPolicy:/imagePulPolicy:/' configs/k8s/jobs/pytorchjob.yaml >"$broken"
if validate "$broken" >/dev/null 2>&1; then
  echo "k8s-crd-check: FAIL: a misspelt field passed; the schema is not strict" >&2
  exit 1
fi
echo "k8s-crd-check: ok: PyTorchJob valid against $operator's CRD; a misspelt field is refused"
