"""parliament on every IAM policy document of every synthesized stack: no finding without a reason
recorded in ``ops.iam_policies.EXCEPTIONS``, no stale exception; and the linter itself catches what
it is there for (an unknown action, a malformed condition, a needless Resource "*")."""

from __future__ import annotations

import json

import pytest

from ops import iam_policies
from ops.iam_policies import PolicyDocument
from tests.conftest import Synthesized, shipped_env_names


def all_documents(synth: Synthesized) -> list[PolicyDocument]:
    return [d for name in synth.stack_names() for d in iam_policies.documents(name, synth.stack(name))]


@pytest.mark.policy
def test_every_policy_document_passes_parliament(synth: Synthesized) -> None:
    docs = all_documents(synth)
    kinds = {d.kind for d in docs}
    assert kinds == {"trust", "identity", "resource"}, kinds
    where = {d.where.split(".")[1] for d in docs if d.where.startswith("resource.")}
    # The CI roles and boundary, the instance role, the function, the key and bucket policies.
    assert {
        "aws_iam_policy",
        "aws_iam_role",
        "aws_iam_role_policy",
        "aws_kms_key",
        "aws_s3_bucket_policy",
    } <= where
    assert any(d.where == "output.state_plan_policy_json" for d in docs)
    unexplained, stale = iam_policies.judge(iam_policies.lint(docs))
    assert not unexplained, "parliament findings without a recorded reason:\n" + "\n".join(
        map(str, unexplained)
    )
    assert not stale, f"recorded exceptions that match no finding (remove them): {stale}"


@pytest.mark.policy
def test_parliament_catches_what_it_is_there_for() -> None:
    bad = PolicyDocument(
        "scratch",
        "resource.aws_iam_policy.bad.policy",
        "identity",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Unknown",
                    "Effect": "Allow",
                    "Action": "s3:GetObjectz",
                    "Resource": "arn:aws:s3:::b/*",
                },
                {
                    "Sid": "Malformed",
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::b/*",
                    "Condition": {"DateGreaterThan": {"aws:CurrentTime": "yesterday"}},
                },
                {"Sid": "NeedlessStar", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                {"Sid": "Twice", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
                {"Sid": "Twice", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"},
            ],
        },
    )
    found = {(f.sid, f.issue) for f in iam_policies.lint([bad])}
    assert ("Unknown", "UNKNOWN_ACTION") in found
    assert ("Malformed", "MISMATCHED_TYPE") in found
    assert ("NeedlessStar", "RESOURCE_STAR") in found
    assert ("Twice", "DUPLICATE_SID") in found
    unexplained, _ = iam_policies.judge(iam_policies.lint([bad]))
    assert unexplained


def test_references_resolve_to_arns_of_the_right_shape(synth: Synthesized) -> None:
    for doc in all_documents(synth):
        text = json.dumps(doc.document)
        assert "${" not in text, doc.id
    with pytest.raises(ValueError, match="no example value"):
        iam_policies._resolve("aws_unknown_thing.x.arn", {})


@pytest.mark.policy
def test_least_privilege_report_flags_nothing_of_the_plan_role(synth: Synthesized) -> None:
    """cloudsplaining: no action of the plan role's policies is a risk without a resource
    constraint; of the deploy role's, only EC2 tagging (random ids; region-scoped)."""
    docs = all_documents(synth)
    report = iam_policies.least_privilege_report(docs)
    ci = {k: v for k, v in report.items() if ".aws_iam_policy.ci_" in k}
    for document, risks in ci.items():
        assert "ci_deploy_network" in document, (document, risks)
        assert risks == {"tagging_actions_without_constraints": ["ec2:CreateTags", "ec2:DeleteTags"]}
    assert {k.split(":")[0] for k in ci} == {f"bootstrap-{e}" for e in shipped_env_names()}
    scratch = PolicyDocument(
        "scratch",
        "output.x",
        "identity",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}],
        },
    )
    assert iam_policies.least_privilege_report([scratch]) == {
        "scratch: output.x": {"permissions_management_without_constraints": ["iam:PassRole"]}
    }
