"""Every IAM policy document a synthesized stack holds, linted by parliament (``.venv-tools``).

A document is any string attribute (or output) that parses as a policy: role trust policies,
identity policies (managed, inline, the CI roles', the state policies), key policies and bucket
policies. Terraform references in it (``${aws_kms_key.state.arn}``) are replaced by example values
of the right shape first, so parliament sees real ARNs; a reference it does not know is an error
(add it to ``_resolve``). Each statement is linted on its own, so every finding names its Sid.

A finding passes only when ``EXCEPTIONS`` records it for that statement with a reason; an exception
that matches nothing is stale and reported too (``ops policy`` and tests/stacks/test_iam_policies.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.runner import ROOT, CommandError, execute

TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
PARLIAMENT = ROOT / "tools" / "parliament_json.py"
CLOUDSPLAINING = ROOT / "tools" / "cloudsplaining_json.py"
EXAMPLE_ACCOUNT = "210987654321"
_REFERENCE = re.compile(r"\$\{([^}]*)\}")

# (statement Sid, or "kind:<trust|identity|resource>" for every statement of that kind, parliament
# issue) -> why the finding is right as it stands. Community auditors (permissions management,
# privilege escalation, credentials exposure) are included: each such grant is acknowledged here.
_KEY = 'key policy: Resource "*" is the key itself'
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("kind:trust", "CREDENTIALS_EXPOSURE"): "a trust policy exists to hand out the role's credentials",
    ("AccountRootAdministers", "RESOURCE_STAR"): _KEY,
    ("AccountRootAdministers", "PERMISSIONS_MANAGEMENT_ACTIONS"): "the account root administers its keys "
    "(AWS's default key policy); IAM policies then decide who uses them",
    ("CloudWatchLogsEncryptsThisAccountsLogGroups", "RESOURCE_STAR"): _KEY,
    ("CloudWatchLogsEncryptsThisAccountsLogGroups", "MISMATCHED_TYPE"): "AWS documents ArnLike/ArnEquals "
    "for kms:EncryptionContext:aws:logs:arn (CloudWatch Logs, encrypt log data with KMS); parliament "
    "types the key as String",
    ("CloudWatchAlarmsPublishToEncryptedTopic", "RESOURCE_STAR"): _KEY,
    ("AutoScalingUsesKeyForVolumesAndNotifications", "RESOURCE_STAR"): _KEY,
    ("AutoScalingCreatesGrantsForVolumes", "RESOURCE_STAR"): _KEY,
    ("AutoScalingCreatesGrantsForVolumes", "PERMISSIONS_MANAGEMENT_ACTIONS"): "auto scaling creates grants "
    "for the encrypted volumes it launches, only for AWS resources (kms:GrantIsForAWSResource)",
    ("GitHubActionsJobsOfOneEnvironment", "UNKNOWN_CONDITION_FOR_ACTION"): "<provider>:aud and "
    "<provider>:sub are IAM's keys for OIDC federation (IAM User Guide, available keys for OIDC "
    "federation); parliament's action table lists only fixed provider names",
    ("GitHubActionsJobsOfOneEnvironment", "UNKNOWN_FEDERATION_SOURCE"): "the account's GitHub Actions OIDC "
    "provider (token.actions.githubusercontent.com), unknown to parliament's pattern list",
    ("ConnectAsMlflowUser", "CREDENTIALS_EXPOSURE"): "IAM database authentication is the design: the "
    "instances get a 15-minute token for one database user",
    ("ConnectAsMlflowUser", "PERMISSIONS_MANAGEMENT_ACTIONS"): "rds-db:connect for one database user "
    "(parliament counts it as permissions management)",
    ("MlflowDatabaseLogin", "CREDENTIALS_EXPOSURE"): "the boundary caps what the instance role may get: "
    "IAM database login, as the instance role's own policy grants it",
    ("MlflowDatabaseLogin", "PERMISSIONS_MANAGEMENT_ACTIONS"): "as MlflowDatabaseLogin above",
    ("ManageNetworkInterfaces", "RESOURCE_MISMATCH"): "db_users' arn:...:ec2:<region>:<account>:*/* is "
    "every EC2 resource of the region, which IAM accepts; parliament wants one resource type per ARN",
    ("MlflowBuckets", "PERMISSIONS_MANAGEMENT_ACTIONS"): "aws_s3_bucket_policy is a managed resource: "
    "the deploy role writes the bucket policies the code defines, on mlopspltf-<env>-mlflow-* only",
    ("MlflowBuckets", "RESOURCE_POLICY_PRIVILEGE_ESCALATION"): "as above: writing the reviewed bucket "
    "policy is the deploy role's job; it has no object access itself",
    ("MlflowRolesCarryTheBoundary", "PERMISSIONS_MANAGEMENT_ACTIONS"): "creates the stack's roles, only "
    "with the environment's permissions boundary (iam:PermissionsBoundary)",
    ("MlflowRolesAndPolicies", "PERMISSIONS_MANAGEMENT_ACTIONS"): "the stack's roles, policies and "
    "instance profile (mlopspltf-<env>-mlflow-*), every role bounded by the workload boundary",
    ("MlflowRolesAndPolicies", "PRIVILEGE_ESCALATION"): "bounded: a role it may change or pass carries the "
    "boundary (created only with it, NoWayOutOfTheBoundary denies removing it)",
    ("AutoScalingServiceLinkedRole", "PERMISSIONS_MANAGEMENT_ACTIONS"): "only auto scaling's own "
    "service-linked role (mlflow.create_autoscaling_service_linked_role)",
    ("MlflowFunction", "PRIVILEGE_ESCALATION"): "the database-user function runs as a bounded role of "
    "the stack (iam:PassRole is limited to mlopspltf-<env>-mlflow-* roles)",
    ("MlflowKeyCreated", "PERMISSIONS_MANAGEMENT_ACTIONS"): "kms:CreateKey has no resource; the request "
    "must carry the environment's tags and the region",
    ("MlflowKeyManaged", "PERMISSIONS_MANAGEMENT_ACTIONS"): "the MLflow key's policy and grants "
    "(aws_kms_key.mlflow), only on keys tagged Stack = mlflow-<env>",
    ("MlflowTopic", "PERMISSIONS_MANAGEMENT_ACTIONS"): "aws_sns_topic's policy attribute: "
    "SetTopicAttributes on the stack's own topic",
    ("MlflowLoadBalancer", "RESOURCE_MISMATCH"): "the stack has application load balancers only: the "
    "listener/net and loadbalancer/net alternatives of these actions do not apply",
    ("MlflowNetworkInTheRegion", "RESOURCE_STAR"): "EC2 ids are random and the stack adopts untagged "
    "defaults (default security group, main route table): region-scoped, listed as broad in "
    "docs/decisions/ci-identities.md",
}


@dataclass(frozen=True)
class PolicyDocument:
    stack: str
    where: str  # resource.<type>.<name>.<attribute> or output.<name>
    kind: str  # trust, identity, resource
    document: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.stack}: {self.where}"


@dataclass(frozen=True)
class Finding:
    document: str
    kind: str
    sid: str
    issue: str
    severity: str
    detail: str

    def __str__(self) -> str:
        return f"{self.document} [{self.sid}] {self.issue} ({self.severity}): {self.detail}"


_KINDS = {"assume_role_policy": "trust", "policy": "identity"}
_RESOURCE_POLICY_TYPES = {
    "aws_kms_key",
    "aws_s3_bucket_policy",
    "aws_sns_topic_policy",
    "aws_secretsmanager_secret_policy",
}


def documents(stack: str, doc: dict[str, Any]) -> list[PolicyDocument]:
    """Every policy document of one synthesized stack (references resolved)."""
    out: list[PolicyDocument] = []
    for rtype, resources in doc.get("resource", {}).items():
        for name, body in resources.items():
            for attribute, value in body.items():
                if not isinstance(value, str) or '"Statement"' not in value:
                    continue
                kind = "resource" if rtype in _RESOURCE_POLICY_TYPES else _KINDS.get(attribute, "identity")
                parsed = json.loads(_substitute(value, doc))
                out.append(PolicyDocument(stack, f"resource.{rtype}.{name}.{attribute}", kind, parsed))
    for name, output in doc.get("output", {}).items():
        value = output.get("value")
        if isinstance(value, str) and '"Statement"' in value:
            parsed = json.loads(_substitute(value, doc))
            out.append(PolicyDocument(stack, f"output.{name}", "identity", parsed))
    return out


def _substitute(text: str, doc: dict[str, Any]) -> str:
    return _REFERENCE.sub(lambda m: _resolve(m.group(1), doc), text)


def _resolve(reference: str, doc: dict[str, Any]) -> str:  # noqa: PLR0911 (one return per shape)
    """An example value of the shape ``reference`` has at apply time."""
    region = _region(doc)
    parts = reference.split(".")
    if parts[0] == "data":
        kind, attribute = parts[1], parts[-1]
        if kind == "aws_partition":
            return "aws"
        if kind == "aws_caller_identity":
            return EXAMPLE_ACCOUNT
        if kind == "aws_elb_service_account":
            return "arn:aws:iam::127311923021:root"
        if kind == "aws_iam_role":
            name = doc["data"][kind][parts[2]]["name"]
            return f"arn:aws:iam::{EXAMPLE_ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/{name}"
        if kind == "aws_iam_openid_connect_provider" and attribute == "arn":
            return f"arn:aws:iam::{EXAMPLE_ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
        raise ValueError(f"no example value for ${{{reference}}}: add it to ops.iam_policies._resolve")
    rtype, name, attribute = parts[0], parts[1], ".".join(parts[2:])
    body = doc.get("resource", {}).get(rtype, {}).get(name, {})

    def literal(key: str) -> str:
        return _REFERENCE.sub("0123abcd", str(body.get(key, name)))

    account = EXAMPLE_ACCOUNT
    if attribute == "arn":
        if rtype == "aws_s3_bucket":
            return f"arn:aws:s3:::{literal('bucket')}"
        if rtype == "aws_kms_key":  # one id per key: two keys never share an ARN
            return f"arn:aws:kms:{region}:{account}:key/{uuid.uuid5(uuid.NAMESPACE_URL, reference)}"
        if rtype == "aws_dynamodb_table":
            return f"arn:aws:dynamodb:{region}:{account}:table/{literal('name')}"
        if rtype == "aws_cloudwatch_log_group":
            return f"arn:aws:logs:{region}:{account}:log-group:{literal('name')}"
        if rtype == "aws_secretsmanager_secret":
            return f"arn:aws:secretsmanager:{region}:{account}:secret:{literal('name')}-AbCdEf"
        if rtype == "aws_iam_openid_connect_provider":
            return f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"
        if rtype == "aws_iam_policy":
            return f"arn:aws:iam::{account}:policy/{literal('name')}"
        if rtype == "aws_elasticache_replication_group":
            return (
                f"arn:aws:elasticache:{region}:{account}:replicationgroup:{literal('replication_group_id')}"
            )
    if rtype == "aws_db_instance" and attribute == "resource_id":
        return "db-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if rtype == "aws_db_instance" and attribute == "master_user_secret[0].secret_arn":
        return f"arn:aws:secretsmanager:{region}:{account}:secret:rds!db-1234abcd-12ab-34cd-56ef-1234567890ab-AbCdEf"
    raise ValueError(f"no example value for ${{{reference}}}: add it to ops.iam_policies._resolve")


def _region(doc: dict[str, Any]) -> str:
    providers = doc.get("provider", {}).get("aws", [{}])
    region: str = providers[0].get("region", "us-east-1")
    return region


def statements(document: PolicyDocument) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Sid, a one-statement policy parliament can lint) per statement. A trust policy has no
    Resource; the role is what it protects, so the role's example ARN is put in."""
    raw = document.document.get("Statement", [])
    for index, statement in enumerate(raw if isinstance(raw, list) else [raw]):
        sid = str(statement.get("Sid", f"#{index}"))
        body = dict(statement)
        if document.kind == "trust" and "Resource" not in body:
            body["Resource"] = f"arn:aws:iam::{EXAMPLE_ACCOUNT}:role/example"
        yield sid, {"Version": document.document.get("Version", ""), "Statement": [body]}


def duplicate_sids(document: PolicyDocument) -> list[str]:
    sids = [s for s, _ in statements(document) if not s.startswith("#")]
    return sorted({s for s in sids if sids.count(s) > 1})


def lint(docs: Sequence[PolicyDocument], python: Path = TOOLS_PYTHON) -> list[Finding]:
    """Every parliament finding (community auditors included) and every duplicate Sid."""
    if not python.exists():
        raise CommandError(f"parliament is missing ({python}): run `make test`, which installs .venv-tools")
    items = [
        {"id": f"{doc.id}\t{doc.kind}\t{sid}", "policy": json.dumps(policy)}
        for doc in docs
        for sid, policy in statements(doc)
    ]
    try:
        result = execute([str(python), str(PARLIAMENT)], cwd=ROOT, timeout=600, input_text=json.dumps(items))
    except subprocess.TimeoutExpired:
        raise CommandError("parliament did not finish within 600 s") from None
    if result.returncode != 0:
        raise CommandError(f"parliament failed (exit {result.returncode}): {result.stderr[-2000:]}")
    findings = []
    for raw in json.loads(result.stdout):
        document, kind, sid = raw["id"].split("\t")
        findings.append(
            Finding(document, kind, sid, raw["issue"], raw["severity"], json.dumps(raw["detail"]))
        )
    for doc in docs:
        findings += [
            Finding(doc.id, doc.kind, s, "DUPLICATE_SID", "HIGH", "Sids must be unique")
            for s in duplicate_sids(doc)
        ]
    return findings


def exception_for(finding: Finding) -> tuple[str, str] | None:
    """The recorded exception that covers ``finding``, if any."""
    for key in ((finding.sid, finding.issue), (f"kind:{finding.kind}", finding.issue)):
        if key in EXCEPTIONS:
            return key
    return None


def judge(findings: Sequence[Finding]) -> tuple[list[Finding], list[tuple[str, str]]]:
    """(findings without a recorded reason, recorded exceptions that matched nothing)."""
    used = {key for f in findings if (key := exception_for(f)) is not None}
    unexplained = [f for f in findings if exception_for(f) is None]
    stale = sorted(set(EXCEPTIONS) - used)
    return unexplained, stale


def least_privilege_report(
    docs: Sequence[PolicyDocument], python: Path = TOOLS_PYTHON
) -> dict[str, dict[str, list[str]]]:
    """cloudsplaining's view of every identity policy: document -> risk -> the actions it grants
    with no resource constraint (``Resource: "*"``). A report, not a gate: each such "*" is also a
    parliament finding, which needs its recorded reason."""
    if not python.exists():
        raise CommandError(
            f"cloudsplaining is missing ({python}): run `make test`, which installs .venv-tools"
        )
    items = [{"id": d.id, "policy": json.dumps(d.document)} for d in docs if d.kind == "identity"]
    try:
        result = execute(
            [str(python), str(CLOUDSPLAINING)], cwd=ROOT, timeout=600, input_text=json.dumps(items)
        )
    except subprocess.TimeoutExpired:
        raise CommandError("cloudsplaining did not finish within 600 s") from None
    if result.returncode != 0:
        raise CommandError(f"cloudsplaining failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return {r["id"]: r["risks"] for r in json.loads(result.stdout) if r["risks"]}
