"""``make deploy / diff / destroy`` (scripts/deploy.py) and the Makefile wiring of the daily commands.

A fake ``cdktf`` logs its calls; one test runs the real pinned cdktf CLI on a provider-free stack.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import deploy, plan
from scripts.stack_runner import ROOT, UsageError
from tests.pipeline_support import FAKE_CDKTF, Captured, fake_outdir, read_log, write_tool

ORDER = ["bootstrap-dev", "mlflow-dev", "databricks-dev"]


@pytest.fixture
def fake_cdktf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tool = write_tool(tmp_path / "bin", "cdktf", FAKE_CDKTF)
    monkeypatch.setenv("MLOPS_CDKTF", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    return tmp_path / "calls.jsonl"


def run(
    tmp_path: Path, command: str, env: str = "dev", answer: str | None = None, **kwargs: object
) -> tuple[int, Captured]:
    console = Captured()
    outdir = tmp_path / "cdktf.out"
    if not outdir.exists():
        fake_outdir(tmp_path, env=env)
    rc = deploy.run(
        command,
        env,
        str(kwargs.pop("stack", "")),
        outdir=outdir,
        plan_dir=tmp_path / "plans",
        skip_synth=True,
        console=console,
        stdin=io.StringIO(answer or ""),
        **kwargs,  # type: ignore[arg-type]
    )
    return rc, console


def stacks_called(log: Path) -> list[str]:
    return [c["args"][1] for c in read_log(log)]


def test_deploy_runs_one_stack_at_a_time_bootstrap_first(tmp_path: Path, fake_cdktf: Path) -> None:
    rc, console = run(tmp_path, "deploy", auto_approve=True)
    assert rc == 0, console.stderr
    assert stacks_called(fake_cdktf) == ORDER
    for call in read_log(fake_cdktf):
        args = call["args"]
        assert args[0] == "deploy"
        assert {"--skip-synth", "--auto-approve"} <= set(args)
        assert args[args.index("--output") + 1] == str((tmp_path / "cdktf.out").resolve())
    assert "==> mlflow-dev (dev): cdktf deploy done in" in console.stdout
    # cdktf's own stack prefix is not doubled.
    assert "mlflow-dev | deploy complete" in console.stdout
    assert "deploy finished (dev): bootstrap-dev, mlflow-dev, databricks-dev" in console.stdout


def test_deploy_asks_first_and_only_the_environment_name_confirms(tmp_path: Path, fake_cdktf: Path) -> None:
    rc, console = run(tmp_path, "deploy", answer="yes\n")
    assert rc == 1
    assert "Deploy 3 stack(s) in environment 'dev', in this order: " + ", ".join(ORDER) in console.stdout
    assert "Type 'dev' to continue" in console.stdout
    assert "answer was not 'dev': nothing done" in console.stderr
    assert read_log(fake_cdktf) == []

    rc, console = run(tmp_path, "deploy", answer="dev\n")
    assert rc == 0
    assert stacks_called(fake_cdktf) == ORDER


def test_deploy_without_stdin_does_nothing(tmp_path: Path, fake_cdktf: Path) -> None:
    rc, console = run(tmp_path, "deploy", answer="")
    assert rc == 1
    assert "no answer on standard input: nothing done (AUTO_APPROVE=1" in console.stderr
    assert read_log(fake_cdktf) == []


def test_prompt_shows_a_current_plan(tmp_path: Path, fake_cdktf: Path) -> None:
    outdir = fake_outdir(tmp_path)
    plans = tmp_path / "plans"
    plans.mkdir()
    source = plan.source_hash(outdir / "stacks" / "mlflow-dev")
    (plans / "mlflow-dev.json").write_text(
        json.dumps({"line": "3 to add, 0 to change, 0 to destroy", "source_sha256": source, "planned_at": 0})
    )
    rc, console = run(tmp_path, "deploy", answer="")
    assert rc == 1
    assert "  mlflow-dev: 3 to add, 0 to change, 0 to destroy (planned" in console.stdout
    assert "  bootstrap-dev: no current plan (run `make plan ENV=dev` to review)" in console.stdout


def test_a_failed_stack_stops_the_ones_after_it(
    tmp_path: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "mlflow-dev")
    rc, console = run(tmp_path, "deploy", auto_approve=True)
    assert rc == 1
    assert stacks_called(fake_cdktf) == ["bootstrap-dev", "mlflow-dev"]
    assert "mlflow-dev | mlflow-dev  Error: creating S3 Bucket: AccessDenied" in console.stderr
    assert "deploy stopped: mlflow-dev failed; not run: databricks-dev" in console.stderr


def test_diff_runs_cdktf_diff_once_per_stack_without_approval(tmp_path: Path, fake_cdktf: Path) -> None:
    rc, _ = run(tmp_path, "diff", stack="mlflow,databricks", migrate_state=True)
    assert rc == 0
    calls = read_log(fake_cdktf)
    assert [c["args"][:2] for c in calls] == [["diff", "mlflow-dev"], ["diff", "databricks-dev"]]
    assert all("--auto-approve" not in c["args"] and "--migrate-state" in c["args"] for c in calls)


def test_destroy_goes_in_reverse_order_and_spares_bootstrap_unless_named(
    tmp_path: Path, fake_cdktf: Path
) -> None:
    rc, console = run(tmp_path, "destroy", answer="destroy dev\n")
    assert rc == 0, console.stderr
    assert "DESTROY every resource of 2 stack(s) in environment 'dev'" in console.stdout
    assert stacks_called(fake_cdktf) == ["databricks-dev", "mlflow-dev"]

    rc, _ = run(tmp_path, "destroy", stack="bootstrap", auto_approve=True)
    assert rc == 0
    assert stacks_called(fake_cdktf)[-1] == "bootstrap-dev"


def test_destroy_needs_the_exact_phrase(tmp_path: Path, fake_cdktf: Path) -> None:
    rc, _ = run(tmp_path, "destroy", answer="dev\n")
    assert rc == 1
    assert read_log(fake_cdktf) == []


def test_destroy_refuses_production_unless_forced(tmp_path: Path, fake_cdktf: Path) -> None:
    rc, console = run(tmp_path, "destroy", env="prd", auto_approve=True)
    assert rc == 2
    assert "refusing to destroy production environment 'prd'" in console.stderr
    assert "FORCE_PRD=1" in console.stderr
    assert read_log(fake_cdktf) == []

    rc, _ = run(tmp_path, "destroy", env="prd", auto_approve=True, force_production=True)
    assert rc == 0
    assert stacks_called(fake_cdktf) == ["databricks-prd", "mlflow-prd"]


def test_production_is_read_from_the_tfvars(tmp_path: Path) -> None:
    assert deploy.is_production("prd") is True
    assert deploy.is_production("dev") is False
    (tmp_path / "env_specific_vars").mkdir()
    (tmp_path / "env_specific_vars" / "qa.tfvars").write_text('environment = "qa"\nis_production = true\n')
    (tmp_path / "env_specific_vars" / "broken.tfvars").write_text("is_production = \n")
    assert deploy.is_production("qa", tmp_path) is True
    assert deploy.is_production("broken", tmp_path) is True  # unreadable counts as production
    with pytest.raises(UsageError, match="unknown environment 'nope'"):
        deploy.is_production("nope", tmp_path)


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def _last_line(*args: str) -> list[str]:
    """The words of the last command ``make -n`` prints (the script call)."""
    proc = _make("-n", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1].split()


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_makefile_passes_the_switches_through() -> None:
    words = _last_line("deploy", "ENV=tst", "STACK=mlflow", "AUTO_APPROVE=1")
    assert words[1:] == ["scripts/deploy.py", "deploy", "--env", "tst", "--stack", "mlflow", "--auto-approve"]
    words = _last_line("destroy", "ENV=prd", "FORCE_PRD=1")
    assert words[1:] == ["scripts/deploy.py", "destroy", "--env", "prd", "--force-production"]
    words = _last_line("diff", "ENV=dev", "MIGRATE_STATE=1")
    assert words[1:] == ["scripts/deploy.py", "diff", "--env", "dev", "--migrate-state"]
    words = _last_line("plan", "ENV=dev", "STACK=databricks")
    assert words[1:] == ["scripts/plan.py", "--env", "dev", "--stack", "databricks", "--lock-timeout", "0s"]
    words = _last_line("force-unlock", "ENV=dev", "STACK=mlflow", "LOCK_ID=abc")
    assert words[1:] == ["scripts/force_unlock.py", "dev", "mlflow", "abc"]


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
@pytest.mark.parametrize("target", ["plan", "deploy", "diff", "destroy"])
def test_makefile_targets_need_an_environment(target: str) -> None:
    proc = _make(target)
    assert proc.returncode == 2
    assert f"usage: make {target} ENV=<env>" in proc.stderr


@pytest.mark.skipif(
    shutil.which("terraform") is None or not (ROOT / "node_modules" / ".bin" / "cdktf").exists(),
    reason="needs Terraform and the pinned cdktf CLI (make setup)",
)
def test_real_cdktf_deploy_and_destroy_of_a_provider_free_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The arguments we pass are ones cdktf 0.21 accepts, end to end, with a local backend."""
    rc_file = tmp_path / "empty.tfrc"
    rc_file.write_text("")
    for key, value in {
        "TF_CLI_CONFIG_FILE": str(rc_file),
        "CHECKPOINT_DISABLE": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLOPS_CDKTF", raising=False)
    monkeypatch.delenv("TERRAFORM_BINARY_NAME", raising=False)
    outdir = fake_outdir(tmp_path, kinds=("bootstrap",))
    state = tmp_path / "bootstrap-dev.tfstate"
    (outdir / "stacks" / "bootstrap-dev" / "cdk.tf.json").write_text(
        json.dumps(
            {
                "//": {"metadata": {"backend": "local", "stackName": "bootstrap-dev", "version": "0.21.0"}},
                "terraform": {"backend": {"local": {"path": str(state)}}},
                "resource": {"terraform_data": {"marker": {"input": "deployed by test"}}},
            }
        )
    )
    rc, console = run(tmp_path, "deploy", stack="bootstrap", auto_approve=True)
    assert rc == 0, console.stdout + console.stderr
    assert "Apply complete! Resources: 1 added" in console.stdout
    assert json.loads(state.read_text())["resources"][0]["type"] == "terraform_data"

    rc, console = run(tmp_path, "destroy", stack="bootstrap", answer="destroy dev\n")
    assert rc == 0, console.stdout + console.stderr
    assert json.loads(state.read_text())["resources"] == []
    assert os.environ.get("MLOPS_CDKTF") is None
