"""``make plan`` (scripts/plan.py): summaries, order, error prefixing, the PR comment's Markdown.

A fake ``terraform`` stands in for the real one where provider plugins would be needed; one test
runs the real Terraform CLI on a provider-free stack to check the ``show -json`` contract.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from scripts import plan
from scripts.stack_runner import Target, parse_kinds, targets
from tests.conftest import Synthesized
from tests.pipeline_support import (
    FAKE_TERRAFORM,
    PLAN_ONE_CREATE,
    Captured,
    fake_outdir,
    read_log,
    write_tool,
)


@pytest.fixture
def fake_tf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tool = write_tool(tmp_path / "bin", "terraform", FAKE_TERRAFORM)
    monkeypatch.setenv("TERRAFORM_BINARY_NAME", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_PLAN_JSON", json.dumps(PLAN_ONE_CREATE))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return tmp_path / "calls.jsonl"


def run_plan(tmp_path: Path, *extra: str, env: str = "dev") -> tuple[int, Captured]:
    console = Captured()
    outdir = tmp_path / "cdktf.out"
    argv = ["--env", env, "--outdir", str(outdir), "--plan-dir", str(tmp_path / "plans"), "--no-synth"]
    return plan.main([*argv, *extra], console), console


def change(actions: list[str], **extra: Any) -> dict[str, Any]:
    return {"address": "x.y", "mode": "managed", "change": {"actions": actions}, **extra}


def test_summary_counts_like_terraform() -> None:
    doc = {
        "resource_changes": [
            change(["create"]),
            change(["create"]),
            change(["update"]),
            change(["delete"]),
            change(["delete", "create"]),  # replace: one add and one destroy, as Terraform counts
            change(["create", "delete"]),
            change(["no-op"]),
            {"address": "data.a.b", "mode": "data", "change": {"actions": ["read"]}},
            change(["no-op"], previous_address="x.old"),
            {**change(["no-op"]), "change": {"actions": ["no-op"], "importing": {"id": "i-1"}}},
            change(["forget"]),
        ],
        "output_changes": {"a": {"actions": ["create"]}},
    }
    summary = plan.summarize(doc)
    assert (summary.add, summary.change, summary.destroy) == (4, 1, 3)
    assert (summary.imports, summary.moves, summary.forget) == (1, 1, 1)
    assert summary.line() == "4 to add, 1 to change, 3 to destroy, 1 to import, 1 to move, 1 to forget"


def test_summary_without_changes() -> None:
    assert plan.summarize({"resource_changes": [change(["no-op"])]}).line() == "no changes"
    assert plan.summarize({}).line() == "no changes"
    outputs_only = plan.summarize({"output_changes": {"o": {"actions": ["update"]}}})
    assert outputs_only.line() == "0 to add, 0 to change, 0 to destroy, 1 output(s) to change"


def test_stack_selection_keeps_deployment_order(tmp_path: Path) -> None:
    assert parse_kinds("databricks,bootstrap") == ("bootstrap", "databricks")
    assert parse_kinds("") == ("bootstrap", "mlflow", "databricks")
    names = [t.name for t in targets("tst", parse_kinds(None), tmp_path, reverse=True)]
    assert names == ["databricks-tst", "mlflow-tst", "bootstrap-tst"]


def test_unknown_kind_is_a_usage_error(tmp_path: Path, fake_tf: Path) -> None:
    rc, console = run_plan(tmp_path, "--stack", "mlflow,network")
    assert rc == 2
    assert "unknown stack kind 'network'" in console.stderr
    assert read_log(fake_tf) == []


def test_plans_every_stack_in_order_with_one_summary_line_each(tmp_path: Path, fake_tf: Path) -> None:
    fake_outdir(tmp_path)
    rc, console = run_plan(tmp_path)
    assert rc == 0, console.stderr
    calls = [(c["stack"], c["args"][0]) for c in read_log(fake_tf)]
    assert calls == [
        (stack, step)
        for stack in ("bootstrap-dev", "mlflow-dev", "databricks-dev")
        for step in ("init", "plan", "show")
    ]
    plan_args = next(c["args"] for c in read_log(fake_tf) if c["args"][0] == "plan")
    assert "-input=false" in plan_args
    assert any(a.startswith("-out=") and a.endswith("bootstrap-dev.tfplan") for a in plan_args)
    out = console.stdout
    for stack in ("bootstrap-dev", "mlflow-dev", "databricks-dev"):
        assert f"{stack} | Plan: 1 to add, 0 to change, 0 to destroy" in out
        assert f"==> {stack} (dev): terraform plan done in" in out
    assert "plan summary (dev):" in out
    # Terraform's own plan text is shown, behind the stack name.
    assert "mlflow-dev | Terraform will perform the following actions:" in out


def test_terraform_errors_are_shown_behind_the_stack_name_and_other_stacks_go_on(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_outdir(tmp_path)
    monkeypatch.setenv("FAKE_FAIL", "mlflow-dev:plan")
    rc, console = run_plan(tmp_path, "--markdown", str(tmp_path / "comment.md"))
    assert rc == 1
    assert "mlflow-dev | │ Error: Failed to get existing workspaces: S3 bucket does not exist." in (
        console.stderr
    )
    assert "==> mlflow-dev (dev): terraform plan FAILED (exit 1)" in console.stdout
    assert "databricks-dev | Plan: 1 to add" in console.stdout
    assert "mlflow-dev      FAILED at terraform plan" in console.stdout
    comment = (tmp_path / "comment.md").read_text()
    assert "| `mlflow-dev` | | | | :x: failed at terraform plan" in comment
    assert "| `bootstrap-dev` | 1 | 0 | 0 | 1 to add, 0 to change, 0 to destroy |" in comment


def test_a_failed_init_shows_its_whole_output(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_outdir(tmp_path, kinds=("bootstrap",))
    monkeypatch.setenv("FAKE_FAIL", "bootstrap-dev:init")
    rc, console = run_plan(tmp_path, "--stack", "bootstrap")
    assert rc == 1
    assert "bootstrap-dev | Initializing the backend..." in console.stderr
    assert "bootstrap-dev | │ Error:" in console.stderr
    assert [c["args"][0] for c in read_log(fake_tf)] == ["init"]


def test_missing_stack_directory_is_reported(tmp_path: Path, fake_tf: Path) -> None:
    fake_outdir(tmp_path, kinds=("bootstrap",))
    rc, console = run_plan(tmp_path, "--stack", "bootstrap,mlflow")
    assert rc == 1
    assert "mlflow-dev | not synthesized" in console.stderr


def test_markdown_has_a_table_and_the_plan_text(tmp_path: Path, fake_tf: Path) -> None:
    fake_outdir(tmp_path, env="tst")
    rc, _ = run_plan(tmp_path, "--markdown", str(tmp_path / "tst.md"), env="tst")
    assert rc == 0
    text = (tmp_path / "tst.md").read_text()
    assert text.startswith("#### Environment `tst`")
    assert "| `databricks-tst` | 1 | 0 | 0 |" in text
    assert "<details><summary><code>bootstrap-tst</code>: 1 to add" in text
    assert "# plan text of bootstrap-tst" in text


def test_github_step_summary_is_appended(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_outdir(tmp_path)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run_plan(tmp_path)[0] == 0
    assert "| `mlflow-dev` | 1 | 0 | 0 |" in summary.read_text()


def test_recorded_plan_is_dropped_when_the_code_changes(tmp_path: Path, fake_tf: Path) -> None:
    outdir = fake_outdir(tmp_path, kinds=("bootstrap",))
    assert run_plan(tmp_path, "--stack", "bootstrap")[0] == 0
    target = Target("bootstrap", "dev", outdir)
    record = plan.recorded_plan(tmp_path / "plans", target)
    assert record is not None
    assert record["line"] == "1 to add, 0 to change, 0 to destroy"
    (target.directory / "cdk.tf.json").write_text("{}")
    assert plan.recorded_plan(tmp_path / "plans", target) is None


def test_every_synthesized_stack_can_be_planned(synth: Synthesized, tmp_path: Path, fake_tf: Path) -> None:
    """The plan script finds each real stack directory the app synthesizes (fake terraform)."""
    console = Captured()
    envs = sorted({s.rsplit("-", 1)[1] for s in synth.stack_names()})
    for env in envs:
        argv = ["--env", env, "--outdir", str(synth.outdir), "--plan-dir", str(tmp_path), "--no-synth"]
        assert plan.main(argv, console) == 0, console.stderr
    planned = sorted({c["stack"] for c in read_log(fake_tf)})
    assert planned == synth.stack_names()


@pytest.mark.skipif(shutil.which("terraform") is None, reason="Terraform CLI not installed")
def test_real_terraform_plan_of_a_provider_free_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real ``terraform init/plan/show -json`` (terraform_data is built in: no download)."""
    rc_file = tmp_path / "empty.tfrc"
    rc_file.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc_file))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    monkeypatch.delenv("TERRAFORM_BINARY_NAME", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    stack_dir = tmp_path / "cdktf.out" / "stacks" / "bootstrap-dev"
    stack_dir.mkdir(parents=True)
    (stack_dir / "cdk.tf.json").write_text(
        json.dumps(
            {
                "terraform": {"backend": {"local": {"path": str(tmp_path / "state.tfstate")}}},
                "resource": {
                    "terraform_data": {
                        "a": {"input": "x"},
                        "b": {"input": "${terraform_data.a.output}"},
                    }
                },
            }
        )
    )
    rc, console = run_plan(tmp_path, "--stack", "bootstrap", "--markdown", str(tmp_path / "dev.md"))
    assert rc == 0, console.stderr
    assert "bootstrap-dev | Plan: 2 to add, 0 to change, 0 to destroy" in console.stdout
    assert "# terraform_data.a will be created" in (tmp_path / "dev.md").read_text()
    assert (tmp_path / "plans" / "bootstrap-dev.tfplan").is_file()
