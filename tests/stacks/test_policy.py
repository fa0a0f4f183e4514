"""checkov on every synthesized stack of every shipped environment: zero findings without a
recorded reason, and no recorded skip that matches nothing (``ops policy``'s own report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.policy import findings
from tests.conftest import Synthesized


@pytest.mark.policy
def test_checkov_finds_nothing_unexplained_in_any_stack(synth: Synthesized) -> None:
    stacks = synth.stack_names()
    assert {name.split("-")[0] for name in stacks} == {"bootstrap", "mlflow", "databricks"}
    report = findings(synth.outdir, stacks)
    assert report.parsing_errors == 0
    assert report.passed > 400, report.passed
    assert not report.unexplained, "checkov findings without a recorded reason:\n" + "\n".join(
        report.unexplained
    )
    assert not report.stale, "recorded checkov skips that match no finding (remove them):\n" + "\n".join(
        report.stale
    )


def test_skips_are_recorded_with_reasons_and_merged(tmp_path: Path) -> None:
    from cdktf import App, TerraformResource, TerraformStack

    from constructs_lib.policy import skip_checks

    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "policy-unit")
    resource = TerraformResource(stack, "thing", terraform_resource_type="null_resource")
    skip_checks(resource, {"CKV_X_1": "first reason"})
    skip_checks(resource, {"CKV_X_2": "second reason"})
    with pytest.raises(ValueError, match="needs a reason"):
        skip_checks(resource, {"CKV_X_3": "  "})
    app.synth()
    doc = json.loads((tmp_path / "stacks" / "policy-unit" / "cdk.tf.json").read_text())
    (body,) = doc["resource"]["null_resource"].values()
    assert body["//"]["checkov"]["skip"] == [
        {"id": "CKV_X_1", "comment": "first reason"},
        {"id": "CKV_X_2", "comment": "second reason"},
    ]
