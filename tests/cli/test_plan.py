"""``ops plan``: summaries from Terraform's ``change_summary``, order, error prefixing, the PR
comment's Markdown, and the saved plan's record (code and state it is bound to).

A fake ``terraform`` stands in for the real one where provider plugins would be needed; one test
runs the real Terraform CLI on a provider-free stack to check the ``plan -json`` contract.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ops import cli, plan
from ops.runner import CommandError, StateInfo
from ops.synth import Target
from tests.cli.support import fake_outdir, read_log, use_fake_terraform
from tests.conftest import Synthesized
from tests.fixtures.real_values import supply_real_values

STACKS = ("bootstrap-dev", "mlflow-dev", "databricks-dev")


@pytest.fixture
def fake_tf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_fake_terraform(tmp_path, monkeypatch)


def run_plan(
    root: Path, capsys: pytest.CaptureFixture[str], *extra: str, env: str = "dev"
) -> tuple[int, str, str]:
    supply_real_values(root)  # the environment files `plan` checks for placeholders
    rc = cli.main(["--root", str(root), "plan", "--env", env, "--no-synth", *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_summary_is_terraforms_change_summary() -> None:
    messages = plan.ui_messages(
        "\n".join(
            [
                json.dumps({"type": "version", "@message": "Terraform 1.11.4"}),
                "not json",
                json.dumps(
                    {
                        "type": "change_summary",
                        "@message": "Plan: 4 to add, 1 to change, 3 to destroy, 1 to import.",
                        "changes": {"add": 4, "change": 1, "remove": 3, "import": 1, "operation": "plan"},
                    }
                ),
            ]
        )
    )
    summary = plan.change_summary(messages)
    assert summary == plan.PlanSummary(add=4, change=1, destroy=3, imports=1)
    assert summary.line() == "4 to add, 1 to change, 3 to destroy, 1 to import"
    assert plan.PlanSummary().line() == "no changes"
    assert plan.change_summary(messages[:1]) is None


def test_unknown_kind_is_a_usage_error(
    tmp_path: Path, fake_tf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_plan(tmp_path, capsys, "--stack", "mlflow", "network")
    assert exit_info.value.code == 2
    assert "invalid choice: 'network'" in capsys.readouterr().err
    assert read_log(fake_tf) == []


def test_plans_every_stack_in_order_with_one_summary_line_each(
    tmp_path: Path, fake_tf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(tmp_path)
    rc, out, err = run_plan(tmp_path, capsys, "--lock-timeout", "10m")
    assert rc == 0, err
    calls = [(c["stack"], c["args"][0]) for c in read_log(fake_tf)]
    assert calls == [(stack, step) for stack in STACKS for step in ("init", "state", "plan", "show")]
    plan_args = next(c["args"] for c in read_log(fake_tf) if c["args"][0] == "plan")
    assert {"-input=false", "-json", "-detailed-exitcode", "-lock-timeout=10m"} <= set(plan_args)
    assert any(a.startswith("-out=") and a.endswith("bootstrap-dev.tfplan") for a in plan_args)
    for stack in STACKS:
        assert f"{stack} | Plan: 1 to add, 0 to change, 0 to destroy" in out
        assert f"==> {stack} (dev): terraform plan done in" in out
    assert "plan summary (dev):" in out
    # Terraform's messages are shown as text, behind the stack name.
    assert "mlflow-dev | terraform_data.x: Plan to create" in out


def test_terraform_errors_are_shown_behind_the_stack_name_and_other_stacks_go_on(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(tmp_path)
    monkeypatch.setenv("FAKE_FAIL", "mlflow-dev:plan")
    rc, out, err = run_plan(tmp_path, capsys, "--markdown", str(tmp_path / "comment.md"))
    assert rc == 1
    assert "mlflow-dev | Error: Failed to get existing workspaces" in err
    assert "mlflow-dev |   S3 bucket does not exist." in err
    assert "==> mlflow-dev (dev): terraform plan FAILED (exit 1)" in out
    assert "databricks-dev | Plan: 1 to add" in out
    assert "mlflow-dev      FAILED at terraform plan" in out
    comment = (tmp_path / "comment.md").read_text()
    assert "| `mlflow-dev` | | | | :x: failed at terraform plan" in comment
    assert (
        "| `bootstrap-dev` | 1 | 0 | 0 | 1 to add, 0 to change, 0 to destroy | no state yet, code " in comment
    )
    # A failed stack leaves no saved plan behind that deploy could apply.
    assert not (tmp_path / "plans" / "mlflow-dev.json").exists()


def test_a_failed_init_shows_its_whole_output(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(tmp_path, kinds=("bootstrap",))
    monkeypatch.setenv("FAKE_FAIL", "bootstrap-dev:init")
    rc, _, err = run_plan(tmp_path, capsys, "--stack", "bootstrap")
    assert rc == 1
    assert "bootstrap-dev | Initializing the backend..." in err
    assert "bootstrap-dev | │ Error:" in err
    assert [c["args"][0] for c in read_log(fake_tf)] == ["init"]
    assert not (tmp_path / "plans" / "bootstrap-dev.json").exists()


def test_missing_stack_directory_is_reported(
    tmp_path: Path, fake_tf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(tmp_path, kinds=("bootstrap",))
    rc, _, err = run_plan(tmp_path, capsys, "--stack", "bootstrap", "mlflow")
    assert rc == 1
    assert "mlflow-dev | not synthesized" in err


def test_markdown_has_a_table_and_the_plan_text(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(tmp_path, env="tst")
    monkeypatch.setenv("FAKE_CHANGES", json.dumps({"add": 0, "change": 2, "remove": 1, "import": 0}))
    rc, _, _ = run_plan(tmp_path, capsys, "--markdown", str(tmp_path / "tst.md"), env="tst")
    assert rc == 0
    text = (tmp_path / "tst.md").read_text()
    assert text.startswith("#### Environment `tst`")
    assert "| `databricks-tst` | 0 | 2 | 1 | 0 to add, 2 to change, 1 to destroy |" in text
    assert "<details><summary><code>bootstrap-tst</code>: 0 to add" in text
    assert "# plan text of bootstrap-tst" in text


def test_github_step_summary_is_appended(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(tmp_path)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run_plan(tmp_path, capsys)[0] == 0
    assert "| `mlflow-dev` | 1 | 0 | 0 |" in summary.read_text()


def test_the_saved_plan_is_bound_to_its_code_and_its_state(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = fake_outdir(tmp_path, kinds=("bootstrap",))
    monkeypatch.setenv("FAKE_STATES", json.dumps({"bootstrap-dev": {"lineage": "L1", "serial": 12}}))
    rc, out, _ = run_plan(tmp_path, capsys, "--stack", "bootstrap")
    assert rc == 0
    assert "bootstrap-dev | Plan: 1 to add, 0 to change, 0 to destroy (against state serial 12)" in out
    target = Target("bootstrap", "dev", outdir)
    plans = tmp_path / "plans"
    saved = plan.saved_plan(plans, target)
    assert saved.state == StateInfo("L1", 12, 0)
    assert saved.changes and saved.line == "1 to add, 0 to change, 0 to destroy"
    assert (plans / "bootstrap-dev.txt").read_text() == "  # plan text of bootstrap-dev\n"

    assert plan.state_moved(saved, StateInfo("L1", 12, 3)) is None
    assert (
        plan.state_moved(saved, StateInfo("L1", 13, 3))
        == "the state moved from serial 12 to 13 since the plan"
    )
    assert "lineage changed (L1 -> L2)" in str(plan.state_moved(saved, StateInfo("L2", 12, 0)))
    assert plan.state_moved(saved, None) == "state serial 12 when planned, no state now"

    (plans / "bootstrap-dev.tfplan").write_text("another plan")
    with pytest.raises(CommandError, match="not the plan file its record describes"):
        plan.saved_plan(plans, target)
    assert run_plan(tmp_path, capsys, "--stack", "bootstrap")[0] == 0
    (target.directory / "cdk.tf.json").write_text("{}")
    with pytest.raises(
        CommandError, match=r"made from other code: .*cdk.tf.json changed since it was planned"
    ):
        plan.saved_plan(plans, target)
    (plans / "bootstrap-dev.json").unlink()
    with pytest.raises(CommandError, match=r"bootstrap-dev: no saved plan .*run `make plan ENV=dev`"):
        plan.saved_plan(plans, target)


def test_detailed_exitcode_says_whether_anything_would_change(
    tmp_path: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The drift check's contract: 2 with changes, 0 without, 1 when a stack could not be planned."""
    outdir = fake_outdir(tmp_path)
    assert run_plan(tmp_path, capsys, "--detailed-exitcode")[0] == 2
    assert run_plan(tmp_path, capsys)[0] == 0
    nothing = {"add": 0, "change": 0, "remove": 0, "import": 0}
    monkeypatch.setenv("FAKE_CHANGES", json.dumps(nothing))
    assert run_plan(tmp_path, capsys, "--detailed-exitcode")[0] == 0
    assert not plan.saved_plan(tmp_path / "plans", Target("mlflow", "dev", outdir)).changes
    monkeypatch.setenv("FAKE_FAIL", "mlflow-dev:plan")
    assert run_plan(tmp_path, capsys, "--detailed-exitcode")[0] == 1


def test_a_committed_provider_lock_file_is_installed_and_used_read_only(
    tmp_path: Path, fake_tf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = fake_outdir(tmp_path, kinds=("bootstrap", "mlflow"))
    (tmp_path / "provider_locks").mkdir()
    (tmp_path / "provider_locks" / "mlflow.terraform.lock.hcl").write_text("# mlflow's lock\n")
    assert run_plan(tmp_path, capsys, "--stack", "bootstrap", "mlflow")[0] == 0
    inits = {c["stack"]: c["args"] for c in read_log(fake_tf) if c["args"][0] == "init"}
    assert "-lockfile=readonly" in inits["mlflow-dev"]
    assert "-lockfile=readonly" not in inits["bootstrap-dev"]
    assert (outdir / "stacks" / "mlflow-dev" / ".terraform.lock.hcl").read_text() == "# mlflow's lock\n"


def test_every_synthesized_stack_can_be_planned(
    synth: Synthesized, fake_tf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ops plan`` finds each real stack directory the app synthesizes (fake terraform)."""
    for env in sorted({s.rsplit("-", 1)[1] for s in synth.stack_names()}):
        rc, _, err = run_plan(synth.outdir.parent, capsys, env=env)
        assert rc == 0, err
    assert sorted({c["stack"] for c in read_log(fake_tf)}) == synth.stack_names()


@pytest.mark.skipif(shutil.which("terraform") is None, reason="Terraform CLI not installed")
def test_real_terraform_plan_of_a_provider_free_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real ``terraform init/plan -json/show`` (terraform_data is built in: no download)."""
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
    rc, out, err = run_plan(tmp_path, capsys, "--stack", "bootstrap", "--markdown", str(tmp_path / "dev.md"))
    assert rc == 0, err
    assert "bootstrap-dev | Plan: 2 to add, 0 to change, 0 to destroy" in out
    assert "bootstrap-dev | terraform_data.a: Plan to create" in out
    assert "# terraform_data.a will be created" in (tmp_path / "dev.md").read_text()
    assert (tmp_path / "plans" / "bootstrap-dev.tfplan").is_file()
    assert "# terraform_data.a will be created" in (tmp_path / "plans" / "bootstrap-dev.txt").read_text()
    saved = plan.saved_plan(tmp_path / "plans", Target("bootstrap", "dev", tmp_path / "cdktf.out"))
    assert saved.state is None and saved.changes

    broken = json.loads((stack_dir / "cdk.tf.json").read_text())
    broken["resource"]["terraform_data"]["b"]["input"] = "${bad}"
    (stack_dir / "cdk.tf.json").write_text(json.dumps(broken))
    rc, out, err = run_plan(tmp_path, capsys, "--stack", "bootstrap")
    assert rc == 1
    assert "bootstrap-dev | Error: Invalid reference" in err
