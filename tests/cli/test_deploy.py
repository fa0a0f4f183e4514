"""``ops deploy / diff / destroy`` and the Makefile aliases of the daily commands.

deploy applies the plans ``ops plan`` saved (a fake ``terraform`` logs its calls; one test runs the
real Terraform CLI: plan, apply, and both kinds of stale plan); ``deploy --direct``, diff and
destroy run the cdktf CLI (a fake ``cdktf``; one test runs the real pinned cdktf CLI on
provider-free stacks).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops import cli
from ops.deploy import stack_order
from ops.env import files
from ops.runner import CommandError, outside_make
from platform_config.loader import load
from platform_config.resolved import DatabricksNames
from tests.cli.support import (
    FAKE_CDKTF,
    FakeWorkspace,
    fake_outdir,
    fake_workspace,
    read_log,
    repo_copy,
    use_fake_terraform,
    write_tool,
)
from tests.conftest import ROOT, scratch_env_name
from tests.fixtures.databricks_env import SEED_STATE

ORDER = ["bootstrap-dev", "mlflow-dev", "databricks-dev"]


@pytest.fixture
def fake_cdktf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    tool = write_tool(tmp_path / "bin", "cdktf", FAKE_CDKTF)
    monkeypatch.setenv("MLOPS_CDKTF", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.delenv("TF_CLI_ARGS_apply", raising=False)
    return tmp_path / "calls.jsonl"


@pytest.fixture
def fake_tf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_fake_terraform(tmp_path, monkeypatch)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return repo_copy(tmp_path / "repo")


@pytest.fixture(autouse=True)
def workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWorkspace]:
    """An empty Databricks workspace: a first apply of databricks-<env> asks it whether the bundle
    or objects of the same names are there (ops.adopt.first_apply_problems)."""
    with fake_workspace() as fake:
        monkeypatch.setenv("MLOPS_DATABRICKS_URL", fake.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", "test-token")
        monkeypatch.delenv("DATABRICKS_AUTH_TYPE", raising=False)
        yield fake


def ops(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    answer: str = "",
) -> tuple[int, str, str]:
    """``python -m ops --root <root> <argv> --no-synth`` in this process, ``answer`` on stdin."""
    if not (root / "cdktf.out").exists():
        env = argv[argv.index("--env") + 1]
        fake_outdir(root, env=env)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    rc = cli.main(["--root", str(root), *argv, "--no-synth"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def stacks_called(log: Path) -> list[str]:
    return [c["args"][1] for c in read_log(log)]


def applied(log: Path) -> list[str]:
    return [c["stack"] for c in read_log(log) if c["args"][0] == "apply"]


def planned(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: str = "dev"
) -> None:
    rc, _, err = ops(root, monkeypatch, capsys, "plan", "--env", env)
    assert rc == 0, err


def test_deploy_applies_exactly_the_saved_plans_in_order(
    root: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(root, dependencies={"mlflow-dev": ["databricks-dev"]})
    planned(root, monkeypatch, capsys)
    argv = ("deploy", "--env", "dev", "--auto-approve", "--lock-timeout", "10m")
    rc, out, err = ops(root, monkeypatch, capsys, *argv)
    assert rc == 0, err
    assert applied(fake_tf) == ["bootstrap-dev", "databricks-dev", "mlflow-dev"]
    for call in read_log(fake_tf):
        if call["args"][0] == "apply":
            plan_path = root / "plans" / f"{call['stack']}.tfplan"
            assert call["args"] == ["apply", "-input=false", "-lock-timeout=10m", "-no-color", str(plan_path)]
    # What is applied is shown first: each plan's text, then one line per stack.
    assert "mlflow-dev |   # plan text of mlflow-dev" in out
    assert "  mlflow-dev: 1 to add, 0 to change, 0 to destroy (planned 0 min ago against no state yet)" in out
    assert "==> mlflow-dev (dev): terraform apply (saved plan) done in" in out
    assert "deploy finished (dev): bootstrap-dev, databricks-dev, mlflow-dev" in out


def test_deploy_refuses_a_missing_plan_or_changed_code_and_applies_nothing(
    root: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = fake_outdir(root)
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve")
    assert rc == 1
    assert "error: nothing applied:" in err
    assert "bootstrap-dev: no saved plan" in err and "run `make plan ENV=dev` and review the new plan" in err
    assert read_log(fake_tf) == []

    planned(root, monkeypatch, capsys)
    (outdir / "stacks" / "mlflow-dev" / "cdk.tf.json").write_text('{"changed": true}')
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve")
    assert rc == 1
    assert "mlflow-dev: the saved plan was made from other code" in err
    assert "bootstrap-dev" not in err
    assert applied(fake_tf) == []


def test_deploy_refuses_when_the_state_moved_since_the_plan(
    root: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(root)
    states = {"bootstrap-dev": {"lineage": "L", "serial": 12}, "mlflow-dev": {"lineage": "M", "serial": 4}}
    monkeypatch.setenv("FAKE_STATES", json.dumps(states))
    planned(root, monkeypatch, capsys)
    states["mlflow-dev"]["serial"] = 5
    monkeypatch.setenv("FAKE_STATES", json.dumps(states))
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve")
    assert rc == 1
    assert "mlflow-dev: the state moved from serial 4 to 5 since the plan: the saved plan is stale" in err
    assert applied(fake_tf) == []


# --- issue 24 (5): no first apply into a target the bundle still manages ---------------------------


@dataclass
class FirstApply:
    """dev, planned with no state anywhere, and the fake workspace its first apply asks."""

    root: Path
    log: Path
    workspace: FakeWorkspace
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def deploy(self, *extra: str) -> tuple[int, str, str]:
        return ops(
            self.root, self.monkeypatch, self.capsys, "deploy", "--env", "dev", "--auto-approve", *extra
        )

    @property
    def names(self) -> DatabricksNames:
        [e] = load(self.root, ["dev"])
        return e.names.databricks


@pytest.fixture
def first_apply(
    root: Path,
    fake_tf: Path,
    workspace: FakeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> FirstApply:
    fake_outdir(root)
    planned(root, monkeypatch, capsys)
    return FirstApply(root, fake_tf, workspace, monkeypatch, capsys)


def test_a_first_apply_asks_the_workspace_and_goes_on_when_nothing_is_there(first_apply: FirstApply) -> None:
    rc, _, err = first_apply.deploy()
    assert rc == 0, err
    names = first_apply.names
    calls = first_apply.workspace.calls
    assert [c[0] for c in calls] == [
        "/api/2.0/workspace/list",
        "/api/2.1/jobs/list",
        "/api/2.1/jobs/list",
        "/api/2.0/mlflow/experiments/get-by-name",
        f"/api/2.1/unity-catalog/models/{names.model_full_name}",
    ]
    assert calls[0][1] == {"path": f"{names.bundle_roots[0]}/state"}
    assert {c[1].get("name") for c in calls[1:3]} == {names.training_job_name, names.batch_inference_job_name}


@pytest.mark.parametrize("case", ["bundle state", "job", "listing denied"])
def test_a_first_apply_into_a_target_the_bundle_still_manages_is_refused(
    first_apply: FirstApply, case: str
) -> None:
    workspace = first_apply.workspace
    state_dir = f"{first_apply.names.bundle_roots[0]}/state"
    if case == "bundle state":
        workspace.objects[f"/api/2.0/workspace/list?path={state_dir}"] = (
            200, {"objects": [{"path": f"{state_dir}/terraform.tfstate", "object_type": "FILE"}]})  # fmt: skip
        workspace.objects[f"/api/2.0/workspace/export?path={state_dir}/terraform.tfstate"] = (
            200,
            SEED_STATE.read_bytes(),
        )
        expected = f"the bundle's state in {state_dir} still holds databricks_grants.registered_model_model"
    elif case == "job":
        name = first_apply.names.training_job_name
        workspace.jobs.append({"job_id": 1, "settings": {"name": name.upper()}})
        expected = f"job {name!r} already exists"
    else:
        workspace.objects[f"/api/2.0/workspace/list?path={state_dir}"] = (
            403, {"error_code": "PERMISSION_DENIED", "message": "no access"})  # fmt: skip
        expected = "HTTP 403 PERMISSION_DENIED: no access"
    rc, _, err = first_apply.deploy()
    assert rc == 1
    assert "nothing applied" in err and "databricks-dev: first apply refused: " in err and expected in err
    assert "python -m ops adopt --env dev" in err
    assert applied(first_apply.log) == []


def test_a_first_apply_without_databricks_credentials_exits_2(
    root: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(root)
    planned(root, monkeypatch, capsys)
    monkeypatch.delenv("DATABRICKS_TOKEN")
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve")
    assert rc == 2
    assert "databricks-dev has no state yet, and a first apply checks the workspace first" in err
    assert applied(fake_tf) == []


def test_a_later_apply_does_not_ask(
    root: Path,
    fake_tf: Path,
    workspace: FakeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_outdir(root)
    held = {"mode": "managed", "type": "databricks_job", "name": "model_training_job", "instances": [{}]}
    monkeypatch.setenv(
        "FAKE_STATES", json.dumps({"databricks-dev": {"lineage": "D", "serial": 3, "resources": [held]}})
    )
    planned(root, monkeypatch, capsys)
    assert ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve")[0] == 0
    assert workspace.calls == []


def test_a_direct_first_apply_is_checked_too(
    root: Path, fake_tf: Path, fake_cdktf: Path, workspace: FakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    [e] = load(root, ["dev"])
    workspace.jobs.append({"job_id": 1, "settings": {"name": e.names.databricks.batch_inference_job_name}})
    fake_outdir(root)
    argv = [
        "--root",
        str(root),
        "deploy",
        "--env",
        "dev",
        "--stack",
        "databricks",
        "--auto-approve",
        "--direct",
        "--no-synth",
    ]
    assert cli.main(argv) == 1
    assert [c for c in read_log(fake_cdktf) if c.get("tool") == "cdktf"] == []


def test_a_plan_terraform_finds_stale_is_reported_and_stops_the_rest(
    root: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(root)
    planned(root, monkeypatch, capsys)
    monkeypatch.setenv("FAKE_FAIL", "mlflow-dev:apply")
    monkeypatch.setenv("FAKE_FAIL_MESSAGE", "Saved plan is stale")
    (root / "cdktf.out" / "stacks" / "mlflow-dev" / "errored.tfstate").write_text("{}")
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve")
    assert rc == 1
    assert applied(fake_tf) == ["bootstrap-dev", "mlflow-dev"]
    assert "mlflow-dev | Terraform refused the saved plan: the state changed after it was made." in err
    assert "mlflow-dev | Terraform could not save the state and wrote it to " in err
    assert "deploy stopped: mlflow-dev failed; not run: databricks-dev" in err


def test_deploy_runs_one_stack_at_a_time_bootstrap_first(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve", "--direct")
    assert rc == 0, err
    assert stacks_called(fake_cdktf) == ORDER
    for call in read_log(fake_cdktf):
        args = call["args"]
        assert args[0] == "deploy"
        assert {"--skip-synth", "--auto-approve", "--ignore-missing-stack-dependencies"} <= set(args)
        assert args[args.index("--output") + 1] == str((root / "cdktf.out").resolve())
        # cdktf has no lock-timeout option: Terraform's own per-command variable carries it.
        assert call["tf_cli_args"] == {"TF_CLI_ARGS_apply": "-lock-timeout=0s"}
    assert "==> mlflow-dev (dev): cdktf deploy done in" in out
    # cdktf's own stack prefix is not doubled.
    assert "mlflow-dev | deploy complete" in out
    assert "deploy finished (dev): bootstrap-dev, mlflow-dev, databricks-dev" in out


def test_lock_timeout_reaches_terraform_apply(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TF_CLI_ARGS_apply", "-parallelism=4")
    rc, _, err = ops(
        root,
        monkeypatch,
        capsys,
        "deploy",
        "--env",
        "dev",
        "--stack",
        "mlflow",
        "--auto-approve",
        "--direct",
        "--lock-timeout",
        "10m",
    )
    assert rc == 0, err
    [call] = read_log(fake_cdktf)
    assert call["tf_cli_args"] == {"TF_CLI_ARGS_apply": "-parallelism=4 -lock-timeout=10m"}


def test_order_follows_the_manifest_dependencies() -> None:
    manifest = {
        "stacks": {
            "bootstrap-dev": {"dependencies": []},
            "mlflow-dev": {"dependencies": ["databricks-dev"]},
            "databricks-dev": {"dependencies": ["bootstrap-dev"]},
        }
    }
    assert stack_order(manifest, ORDER) == ["bootstrap-dev", "databricks-dev", "mlflow-dev"]
    # A dependency that is not selected does not hold the others back.
    assert stack_order(manifest, ["mlflow-dev"]) == ["mlflow-dev"]
    no_dependencies: dict[str, Any] = {"stacks": {name: {"dependencies": []} for name in ORDER}}
    assert stack_order(no_dependencies, list(reversed(ORDER))) == ORDER
    with pytest.raises(CommandError, match="not synthesized: mlflow-tst"):
        stack_order(no_dependencies, ["mlflow-tst"])
    cycle = {
        "stacks": {
            "bootstrap-dev": {"dependencies": ["mlflow-dev"]},
            "mlflow-dev": {"dependencies": ["bootstrap-dev"]},
        }
    }
    with pytest.raises(CommandError, match="cycle"):
        stack_order(cycle, ["bootstrap-dev", "mlflow-dev"])


def test_deploy_and_destroy_follow_the_synthesized_dependencies(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(root, dependencies={"mlflow-dev": ["databricks-dev"], "databricks-dev": ["bootstrap-dev"]})
    assert ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve", "--direct")[0] == 0
    assert stacks_called(fake_cdktf) == ["bootstrap-dev", "databricks-dev", "mlflow-dev"]
    assert ops(root, monkeypatch, capsys, "destroy", "--env", "dev", "--auto-approve")[0] == 0
    assert stacks_called(fake_cdktf)[3:] == ["mlflow-dev", "databricks-dev"]


def test_deploy_asks_first_and_only_the_environment_name_confirms(
    root: Path, fake_tf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_outdir(root)
    planned(root, monkeypatch, capsys)
    rc, out, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", answer="yes\n")
    assert rc == 1
    assert "saved plans to apply:\n  bootstrap-dev: 1 to add" in out
    assert "Deploy 3 stack(s) in environment 'dev', in this order: " + ", ".join(ORDER) in out
    assert "Type 'dev' to continue" in out
    assert "answer was not 'dev': nothing done" in err
    assert applied(fake_tf) == []

    rc, _, _ = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", answer="dev\n")
    assert rc == 0
    assert applied(fake_tf) == ORDER


def test_deploy_without_stdin_does_nothing(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--direct")
    assert rc == 1
    assert "no answer on standard input: nothing done (AUTO_APPROVE=1" in err
    assert read_log(fake_cdktf) == []


def test_migrate_state_takes_the_direct_cdktf_path(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backend change cannot travel in a saved plan: cdktf deploy --migrate-state does it."""
    argv = ("deploy", "--env", "dev", "--stack", "mlflow", "--auto-approve", "--migrate-state")
    assert ops(root, monkeypatch, capsys, *argv)[0] == 0
    [call] = read_log(fake_cdktf)
    assert call["args"][:2] == ["deploy", "mlflow-dev"] and "--migrate-state" in call["args"]


def test_a_failed_stack_stops_the_ones_after_it(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "mlflow-dev")
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", "--env", "dev", "--auto-approve", "--direct")
    assert rc == 1
    assert stacks_called(fake_cdktf) == ["bootstrap-dev", "mlflow-dev"]
    assert "mlflow-dev | mlflow-dev  Error: creating S3 Bucket: AccessDenied" in err
    assert "deploy stopped: mlflow-dev failed; not run: databricks-dev" in err


def test_diff_runs_cdktf_diff_once_per_stack_without_approval(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("diff", "--env", "dev", "--stack", "databricks", "mlflow", "--migrate-state")
    assert ops(root, monkeypatch, capsys, *argv)[0] == 0
    calls = read_log(fake_cdktf)
    assert [c["args"][:2] for c in calls] == [["diff", "mlflow-dev"], ["diff", "databricks-dev"]]
    assert all("--auto-approve" not in c["args"] and "--migrate-state" in c["args"] for c in calls)
    assert all(c["tf_cli_args"] == {"TF_CLI_ARGS_plan": "-lock-timeout=0s"} for c in calls)


def test_destroy_goes_in_reverse_order_and_spares_bootstrap_unless_named(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = ops(root, monkeypatch, capsys, "destroy", "--env", "dev", answer="destroy dev\n")
    assert rc == 0, err
    assert "DESTROY every resource of 2 stack(s) in environment 'dev'" in out
    assert stacks_called(fake_cdktf) == ["databricks-dev", "mlflow-dev"]

    rc, _, _ = ops(
        root, monkeypatch, capsys, "destroy", "--env", "dev", "--stack", "bootstrap", "--auto-approve"
    )
    assert rc == 0
    assert stacks_called(fake_cdktf)[-1] == "bootstrap-dev"


def test_destroy_needs_the_exact_phrase(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, _ = ops(root, monkeypatch, capsys, "destroy", "--env", "dev", answer="dev\n")
    assert rc == 1
    assert read_log(fake_cdktf) == []


def test_destroy_refuses_production_unless_forced(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = ops(root, monkeypatch, capsys, "destroy", "--env", "prd", "--auto-approve")
    assert rc == 2
    assert "refusing to destroy production environment 'prd'" in err
    assert "FORCE_PRD=1" in err
    assert read_log(fake_cdktf) == []

    rc, _, _ = ops(
        root, monkeypatch, capsys, "destroy", "--env", "prd", "--auto-approve", "--force-production"
    )
    assert rc == 0
    assert stacks_called(fake_cdktf) == ["databricks-prd", "mlflow-prd"]


def test_production_comes_from_the_loaded_environment(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the name: ``is_production = true`` in the environment's file is what counts."""
    source = next(e.name for e in load(root) if e.settings.is_production)
    new = scratch_env_name()
    files.add(root, new, source)  # `ops env add`'s files: a generated name, the same settings
    fake_outdir(root, env=new)
    rc, _, err = ops(root, monkeypatch, capsys, "destroy", "--env", new, "--auto-approve")
    assert rc == 2, err
    assert f"refusing to destroy production environment {new!r} (env_specific_vars/{new}.tfvars" in err
    assert read_log(fake_cdktf) == []


def test_destroy_refuses_when_the_configuration_does_not_load(
    root: Path, fake_cdktf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (root / "env_specific_vars" / "dev.tfvars").write_text("is_production = \n")
    rc, _, err = ops(root, monkeypatch, capsys, "destroy", "--env", "dev", "--auto-approve")
    assert rc == 2
    assert err.startswith("error: env_specific_vars/dev.tfvars")
    assert "Traceback" not in err
    assert read_log(fake_cdktf) == []

    shutil.copy(ROOT / "env_specific_vars" / "dev.tfvars", root / "env_specific_vars" / "dev.tfvars")
    rc, _, err = ops(root, monkeypatch, capsys, "destroy", "--env", "nope", "--auto-approve")
    assert rc == 2
    assert "--env: unknown environment 'nope'" in err


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        # Run under `make bench SUITE=1` (or any make with variables), make would pass them on.
        env=outside_make(os.environ),
    )


def _last_line(*args: str) -> list[str]:
    """The words of the last command ``make -n`` prints (the ops call)."""
    proc = _make("-n", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1].split()


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_targets_pass_the_variables_through() -> None:
    words = _last_line("deploy", "ENV=tst", "STACK=mlflow,databricks", "AUTO_APPROVE=1")
    assert words[1:] == [
        "-m", "ops", "deploy", "--env", "tst", "--stack", "mlflow", "databricks", "--lock-timeout", "0s", "--auto-approve"
    ]  # fmt: skip
    words = _last_line("deploy", "ENV=dev", "DIRECT=1", "MIGRATE_STATE=1")
    assert words[3:] == ["deploy", "--env", "dev", "--lock-timeout", "0s", "--direct", "--migrate-state"]
    assert _last_line("provider-locks", "CHECK=1")[3:] == ["provider-locks", "--check"]
    words = _last_line("destroy", "ENV=prd", "FORCE_PRD=1")
    assert words[3:] == ["destroy", "--env", "prd", "--lock-timeout", "0s", "--force-production"]
    words = _last_line("diff", "ENV=dev", "MIGRATE_STATE=1", "LOCK_TIMEOUT=5m")
    assert words[3:] == ["diff", "--env", "dev", "--lock-timeout", "5m", "--migrate-state"]
    words = _last_line("plan", "ENV=dev", "STACK=databricks", "RECONFIGURE=1")
    assert words[3:] == [
        "plan",
        "--env",
        "dev",
        "--stack",
        "databricks",
        "--lock-timeout",
        "0s",
        "--reconfigure",
    ]
    words = _last_line("state-unlock", "ENV=dev", "STACK=mlflow", "LOCK_ID=abc")
    assert words[3:] == ["state", "unlock", "--env", "dev", "--stack", "mlflow", "--lock-id", "abc"]
    assert _last_line("state-migrate", "ENV=dev")[3:] == ["state", "migrate", "--env", "dev"]
    assert _last_line("synth", "ENV=dev,tst")[3:] == ["synth", "--env", "dev", "tst"]
    assert _last_line("bench", "SELECTION=1")[3:] == ["bench", "--runs", "3", "--selection"]
    words = _last_line(
        "adopt",
        "ENV=prd",
        "FROM=b.tfstate",
        "BUNDLE_DIR=../p",
        "BRANCHES=origin/main,origin/release",
        "UNBIND=1",
    )
    assert words[3:] == [
        "adopt", "--env", "prd", "--from", "b.tfstate", "--bundle-dir", "../p",
        "--branch", "origin/main", "--branch", "origin/release", "--unbind",
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
@pytest.mark.parametrize("target", ["plan", "deploy", "diff", "destroy", "state-migrate", "state-unlock"])
def test_make_targets_need_an_environment(target: str) -> None:
    proc = _make(target)
    assert proc.returncode == 2
    assert f"usage: make {target} ENV=<env>" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")
def test_make_help_lists_each_target_with_its_variables() -> None:
    proc = _make("help")
    assert proc.returncode == 0, proc.stderr
    # Each target's (or variable's) own line; descriptions continue on indented lines below it.
    rows = {
        line.split()[0]: line
        for line in proc.stdout.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    }
    expected = {
        "synth": ["ENV=", "STACK="],
        "plan": ["ENV=", "STACK=", "LOCK_TIMEOUT=", "RECONFIGURE=1"],
        "deploy": ["ENV=", "STACK=", "LOCK_TIMEOUT=", "AUTO_APPROVE=1", "DIRECT=1", "MIGRATE_STATE=1"],
        "provider-locks": ["ENV=", "CHECK=1"],
        "destroy": ["ENV=", "STACK=", "AUTO_APPROVE=1", "FORCE_PRD=1"],
        "state-unlock": ["ENV=", "STACK=", "LOCK_ID="],
        "state-migrate": ["ENV="],
        "diff": ["ENV=", "STACK=", "MIGRATE_STATE=1"],
    }
    for target in ("setup", "test", "policy", "diagram", "bench", "fmt", "lint", "docs", "clean", *expected):
        assert target in rows, f"make help does not list {target}"
    for target, variables in expected.items():
        assert all(v in rows[target].split() for v in variables), rows[target]
    # ... and says what each variable means.
    for variable in (
        "ENV",
        "STACK",
        "LOCK_TIMEOUT",
        "AUTO_APPROVE",
        "DIRECT",
        "FORCE_PRD",
        "MIGRATE_STATE",
        "LOCK_ID",
    ):
        assert len(rows[variable].split()) > 2, rows[variable]


@pytest.mark.skipif(
    shutil.which("terraform") is None or not (ROOT / "node_modules" / ".bin" / "cdktf").exists(),
    reason="needs Terraform and the pinned cdktf CLI (make setup)",
)
def test_real_cdktf_deploy_and_destroy_of_provider_free_stacks(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The arguments we pass are ones cdktf 0.21 accepts, end to end, with a local backend: a stack
    whose dependency is recorded in the manifest, deployed alone, and the lock timeout variable."""
    rc_file = root / "empty.tfrc"
    rc_file.write_text("")
    for key, value in {
        "TF_CLI_CONFIG_FILE": str(rc_file),
        "CHECKPOINT_DISABLE": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLOPS_CDKTF", raising=False)
    monkeypatch.delenv("TERRAFORM_BINARY_NAME", raising=False)
    outdir = fake_outdir(root, kinds=("bootstrap", "mlflow"), dependencies={"mlflow-dev": ["bootstrap-dev"]})
    state = root / "mlflow-dev.tfstate"
    (outdir / "stacks" / "mlflow-dev" / "cdk.tf.json").write_text(
        json.dumps(
            {
                "//": {"metadata": {"backend": "local", "stackName": "mlflow-dev", "version": "0.21.0"}},
                "terraform": {"backend": {"local": {"path": str(state)}}},
                "resource": {"terraform_data": {"marker": {"input": "deployed by test"}}},
            }
        )
    )
    argv = ("--env", "dev", "--stack", "mlflow", "--lock-timeout", "5s")
    rc, out, err = ops(root, monkeypatch, capsys, "deploy", *argv, "--auto-approve", "--direct")
    assert rc == 0, out + err
    assert "Apply complete! Resources: 1 added" in out
    assert json.loads(state.read_text())["resources"][0]["type"] == "terraform_data"

    rc, out, err = ops(root, monkeypatch, capsys, "destroy", *argv, answer="destroy dev\n")
    assert rc == 0, out + err
    assert json.loads(state.read_text())["resources"] == []
    assert os.environ.get("MLOPS_CDKTF") is None


@pytest.mark.skipif(shutil.which("terraform") is None, reason="Terraform CLI not installed")
def test_real_terraform_applies_the_saved_plan_and_refuses_stale_ones(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real ``terraform plan -out`` / ``apply <planfile>`` on a provider-free stack (local backend):
    the saved plan is applied; after the state moved, our check refuses; when the record is made
    to agree with the moved state, Terraform's own check ("Saved plan is stale") refuses too."""
    rc_file = root / "empty.tfrc"
    rc_file.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc_file))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    monkeypatch.delenv("TERRAFORM_BINARY_NAME", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    outdir = fake_outdir(root, kinds=("mlflow",))
    stack_dir = outdir / "stacks" / "mlflow-dev"
    state = root / "mlflow-dev.tfstate"

    def write_stack(value: str) -> None:
        doc = {
            "terraform": {"backend": {"local": {"path": str(state)}}},
            "resource": {"terraform_data": {"marker": {"input": value}}},
        }
        (stack_dir / "cdk.tf.json").write_text(json.dumps(doc))

    def state_doc() -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(state.read_text())
        return doc

    argv = ("--env", "dev", "--stack", "mlflow")
    write_stack("one")
    assert ops(root, monkeypatch, capsys, "plan", *argv)[0] == 0
    rc, out, err = ops(root, monkeypatch, capsys, "deploy", *argv, "--auto-approve")
    assert rc == 0, out + err
    assert "mlflow-dev | Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in out
    assert state_doc()["resources"][0]["instances"][0]["attributes"]["input"]["value"] == "one"

    write_stack("two")
    assert ops(root, monkeypatch, capsys, "plan", *argv)[0] == 0
    record = root / "plans" / "mlflow-dev.json"
    planned_serial = json.loads(record.read_text())["state"]["serial"]
    # Someone else changes the state after the plan (here: the user's direct path).
    write_stack("three")
    subprocess.run(
        ["terraform", "apply", "-auto-approve", "-input=false", "-no-color"],
        cwd=stack_dir,
        check=True,
        capture_output=True,
    )
    write_stack("two")
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", *argv, "--auto-approve")
    assert rc == 1
    moved = state_doc()["serial"]
    assert f"the state moved from serial {planned_serial} to {moved} since the plan" in err

    doc = json.loads(record.read_text())
    doc["state"]["serial"] = moved
    record.write_text(json.dumps(doc))
    rc, _, err = ops(root, monkeypatch, capsys, "deploy", *argv, "--auto-approve")
    assert rc == 1
    assert "Saved plan is stale" in err
    assert "mlflow-dev | Terraform refused the saved plan: the state changed after it was made." in err
    assert state_doc()["resources"][0]["instances"][0]["attributes"]["input"]["value"] == "three"
