// Validate Argo Rollouts AnalysisTemplates (a JSON array on stdin) with the models of the npm
// package @kubernetes-models/argo-rollouts, generated from Argo Rollouts' Go API types.
// Run from a directory where that package is installed (tests/observability does it).
import { AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate";
import { readFileSync } from "node:fs";

let invalid = 0;
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  try {
    new AnalysisTemplate(doc).validate();
    console.log("valid");
  } catch (err) {
    invalid += 1;
    console.log(`invalid: ${err.message}`);
  }
}
process.exit(invalid ? 1 : 0);
