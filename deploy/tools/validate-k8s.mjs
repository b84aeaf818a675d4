// Validate Kubernetes manifests (a JSON array on stdin) against the Kubernetes OpenAPI
// schemas as compiled by kubernetes-models (ajv), plus the Prometheus-operator and KEDA CRDs.
// Prints one line per manifest; exits 1 when any is invalid or of an unknown kind.
import { readFileSync } from "node:fs";

const GROUPS = {
  v1: "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "networking.k8s.io/v1": "kubernetes-models/networking.k8s.io/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
};

const manifests = JSON.parse(readFileSync(0, "utf8"));
let failures = 0;
for (const manifest of manifests) {
  const where = `${manifest.apiVersion} ${manifest.kind} ${manifest.metadata?.name}`;
  const group = GROUPS[manifest.apiVersion];
  if (!group) {
    console.log(`UNKNOWN ${where}: no schema for this apiVersion`);
    failures += 1;
    continue;
  }
  try {
    const module = await import(`${group}/${manifest.kind}`);
    new module[manifest.kind](manifest).validate();
    console.log(`ok ${where}`);
  } catch (error) {
    console.log(`INVALID ${where}: ${error.message ?? error}`);
    failures += 1;
  }
}
process.exit(failures ? 1 : 0);
