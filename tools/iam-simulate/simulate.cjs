// Evaluates IAM requests against policies with @cloud-copilot/iam-simulate's core engine, the way
// AWS's policy evaluation logic does (explicit deny, identity and resource policies, conditions).
//
// stdin:  [{"id", "principal", "action", "resource", "accountId", "context": {key: value},
//           "identityPolicies": [policy, ...], "resourcePolicy": policy | null,
//           "boundaries": [policy, ...] (permissions boundaries; optional)}, ...]
// stdout: [{"id", "result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied"}, ...]
//
// Why the core engine and not runSimulation(): runSimulation first drops every context key that the
// Service Authorization Reference does not list for the action, and for
// sts:AssumeRoleWithWebIdentity it lists provider-specific claims (token.actions...:environment,
// ...) but not the generic OIDC keys <provider>:aud and <provider>:sub that IAM evaluates in trust
// policies. Dropped keys count as absent, so every token, the right one too, would be refused and
// a refusal would prove nothing. The core engine evaluates the request as given.
"use strict";
const fs = require("fs");
const path = require("path");
const { loadPolicy } = require("@cloud-copilot/iam-policy");

// The engine's modules are not in the package's "exports": load them by file.
const dist = path.dirname(require.resolve("@cloud-copilot/iam-simulate"));
const { authorize } = require(path.join(dist, "core_engine", "CoreSimulatorEngine.js"));
const { AwsRequestImpl } = require(path.join(dist, "request", "request.js"));
const { RequestContextImpl } = require(path.join(dist, "requestContext.js"));
const { DiscoveryContextKeyConstraints } = require(
  path.join(dist, "context_keys", "discoveryContextKeyConstraints.js"),
);

function evaluate(c) {
  const request = new AwsRequestImpl(
    c.principal,
    { resource: c.resource, accountId: c.accountId },
    c.action,
    new RequestContextImpl(c.context || {}),
  );
  const analysis = authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: (c.identityPolicies || []).map((p, i) => loadPolicy(p, { name: `identity-${i}` })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: c.resourcePolicy ? loadPolicy(c.resourcePolicy, { name: "resource" }) : undefined,
    permissionBoundaries: c.boundaries && c.boundaries.length
      ? c.boundaries.map((p, i) => loadPolicy(p, { name: `boundary-${i}` }))
      : undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: "Strict",
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]),
    },
    serviceSettings: { s3: {} },
  });
  return analysis.result;
}

const cases = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map((c) => ({ id: c.id, result: evaluate(c) }))));
