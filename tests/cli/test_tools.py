"""The runner every command uses, ``ops fmt`` / ``ops lint`` helpers, the benchmark's memory
probe, and ``ops policy``'s handling of checkov's report (with a fake checkov)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops import bench, lint, policy, provider_locks, runner
from ops.runner import CommandError, Terraform, execute
from ops.synth import Target
from tests.cli.support import FAKE_TERRAFORM, Captured, fake_outdir, read_log, write_tool


@pytest.fixture
def quiet_terraform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc_file = tmp_path / "empty.tfrc"
    rc_file.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(rc_file))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")


@pytest.mark.skipif(shutil.which("terraform") is None, reason="Terraform CLI not installed")
@pytest.mark.usefixtures("quiet_terraform")
def test_terraform_fmt_covers_tfvars_and_backend_configs(tmp_path: Path) -> None:
    (tmp_path / "env_specific_vars").mkdir()
    (tmp_path / "backend_configs").mkdir()
    tfvars = tmp_path / "env_specific_vars" / "qa.tfvars"
    config = tmp_path / "backend_configs" / "qa.config"
    tfvars.write_text('environment = "qa"\nis_production=false\n')
    config.write_text('bucket = "b"\nuse_lockfile   = true\n')
    problems = lint.format_hcl(check=True, root=tmp_path)
    assert [p.splitlines()[0] for p in problems] == [
        "backend_configs/qa.config: not formatted (make fmt)",
        "env_specific_vars/qa.tfvars: not formatted (make fmt)",
    ]
    assert "+is_production = false" in problems[1]
    assert lint.format_hcl(check=False, root=tmp_path) == [
        "backend_configs/qa.config: formatted",
        "env_specific_vars/qa.tfvars: formatted",
    ]
    assert config.read_text() == 'bucket       = "b"\nuse_lockfile = true\n'
    assert lint.format_hcl(check=True, root=tmp_path) == []


@pytest.mark.skipif(shutil.which("terraform") is None, reason="Terraform CLI not installed")
@pytest.mark.usefixtures("quiet_terraform")
def test_shipped_environment_files_are_formatted() -> None:
    from tests.conftest import ROOT

    assert lint.format_hcl(check=True, root=ROOT) == []


def test_a_missing_linter_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lint, "TOOLS_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    for result in (lint.zizmor(), lint.actionlint()):
        assert result.missing and not result.ok
        assert "run `make test`" in result.output


def test_memory_probe_counts_the_child_processes() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; x = bytearray(64 * 2**20); time.sleep(5)"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if bench.tree_rss_kib(child.pid) > 64 * 1024:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        own = bench.tree_rss_kib(child.pid)
        tree = bench.tree_rss_kib(os.getpid())
        assert own > 64 * 1024
        assert tree >= own
    finally:
        child.kill()
        child.wait()


def test_a_benchmark_sample_tells_python_from_node() -> None:
    node = "const b = Buffer.alloc(96 * 2 ** 20, 1); setTimeout(() => b, 500)"
    script = f"import subprocess; x = bytearray(64 * 2**20); subprocess.run(['node', '-e', {node!r}])"
    sample = bench.measure(bench.Case("probe", [sys.executable, "-c", script]))
    assert 64 < sample.python_mib < 96
    assert sample.node_mib > 96
    assert sample.tree_mib >= (sample.python_mib + sample.node_mib) * 0.5
    assert 0.5 <= sample.seconds < 30


def test_a_child_sampled_before_its_exec_still_counts_as_node() -> None:
    # The child stays a copy of its Python parent for a while (as subprocess's fork does for an
    # instant on a loaded machine): the samples taken then must not make node's memory Python's.
    node = "const b = Buffer.alloc(96 * 2 ** 20, 1); setTimeout(() => b, 500)"
    script = (
        "import os, time\n"
        "x = bytearray(64 * 2**20)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(0.6)\n"
        f"    os.execvp('node', ['node', '-e', {node!r}])\n"
        "os.waitpid(pid, 0)\n"
    )
    sample = bench.measure(bench.Case("fork-then-exec", [sys.executable, "-c", script]))
    assert 64 < sample.python_mib < 96
    assert sample.node_mib > 96


def test_long_steps_report_progress_and_prefix_every_line(tmp_path: Path) -> None:
    console = Captured()
    script = "import sys, time; print('out line'); print('err line', file=sys.stderr); time.sleep(0.5)"
    result = console.run(
        [sys.executable, "-c", script],
        label="mlflow-tst",
        env_name="tst",
        step="terraform plan",
        cwd=tmp_path,
        heartbeat=0.1,
    )
    assert result.ok
    assert "==> mlflow-tst (tst): terraform plan ..." in console.stdout
    assert "==> mlflow-tst (tst): terraform plan still running (0 s)" in console.stdout
    assert "mlflow-tst | out line" in console.stdout
    assert "mlflow-tst | err line" in console.stderr
    assert "==> mlflow-tst (tst): terraform plan done in" in console.stdout


def test_a_missing_tool_is_one_prefixed_line(tmp_path: Path) -> None:
    console = Captured()
    result = console.run(
        [str(tmp_path / "no-such-terraform"), "init"],
        label="bootstrap-dev",
        env_name="dev",
        step="init",
        cwd=tmp_path,
    )
    assert result.returncode == 127
    assert "bootstrap-dev | " in console.stderr and "command not found" in console.stderr


def test_the_runner_feeds_stdin_and_enforces_its_timeout(tmp_path: Path) -> None:
    echoed = execute(
        [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"], cwd=tmp_path, input_text="abc"
    )
    assert echoed.stdout == "ABC"
    with pytest.raises(subprocess.TimeoutExpired):
        execute([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path, timeout=0.3)


def test_terraform_failures_say_what_failed(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not found on PATH"):
        Terraform(tmp_path, binary=str(tmp_path / "no-terraform")).run("version")
    failing = write_tool(
        tmp_path / "bin", "terraform", "import sys; print('Error: boom', file=sys.stderr); sys.exit(3)"
    )
    with pytest.raises(CommandError, match=r"failed in .* \(exit 3\):\n    Error: boom"):
        Terraform(tmp_path, binary=str(failing)).run("init")
    assert Terraform(tmp_path, binary=str(failing)).run("init", check=False).returncode == 3


FAKE_CHECKOV = r"""
import json, sys
files = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "-f"]
failed = [
    # A resource check, named by its block: the runner maps its first line to the address.
    {"check_id": "CKV_AWS_1", "check_name": "explained", "file_abs_path": files[0],
     "resource": "resource.aws_s3_bucket", "file_line_range": [4, 9]},
    {"check_id": "CKV_AWS_2", "check_name": "nobody said why", "file_abs_path": files[0],
     "resource": "aws_s3_bucket.logs[0]", "file_line_range": [4, 9]},
]
print(json.dumps([{"check_type": "terraform_json", "results": {"failed_checks": failed},
                   "summary": {"passed": 7, "parsing_errors": 0}}]))
"""


def test_policy_applies_recorded_skips_and_reports_stale_ones(tmp_path: Path) -> None:
    stack_dir = tmp_path / "stacks" / "mlflow-dev"
    stack_dir.mkdir(parents=True)
    skips = [{"id": "CKV_AWS_1", "comment": "a reason"}, {"id": "CKV_AWS_9", "comment": "no longer found"}]
    doc = {"resource": {"aws_s3_bucket": {"logs": {"//": {"checkov": {"skip": skips}}, "bucket": "b"}}}}
    (stack_dir / "cdk.tf.json").write_text(json.dumps(doc, indent=2))
    checkov = write_tool(tmp_path / "bin", "checkov", FAKE_CHECKOV)

    report = policy.findings(tmp_path, ["mlflow-dev"], checkov)
    assert report.passed == 7
    assert report.unexplained == ("mlflow-dev: aws_s3_bucket.logs: CKV_AWS_2 nobody said why",)
    assert report.stale == ("mlflow-dev: aws_s3_bucket.logs: CKV_AWS_9",)
    assert not report.ok


def test_policy_without_the_tool_venv_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="run `make test`"):
        policy.findings(tmp_path, [], tmp_path / "no-such-venv" / "bin" / "checkov")


AWS = provider_locks.Provider("registry.terraform.io/hashicorp/aws", "6.25.0")
RANDOM = provider_locks.Provider("registry.terraform.io/hashicorp/random", "3.7.2")


def lock_text(*blocks: tuple[str, str, bool]) -> str:
    """A lock file as ``terraform providers lock`` writes it: (address, constraint, with hashes)."""
    text = '# This file is maintained automatically by "terraform init".\n'
    for address, constraint, hashed in blocks:
        hashes = '\n    "h1:abc=",\n    "zh:0123",\n  ' if hashed else ""
        text += (
            f'\nprovider "{address}" {{\n  version     = "{constraint}"\n'
            f'  constraints = "{constraint}"\n  hashes = [{hashes}]\n}}\n'
        )
    return text


def test_provider_sources_become_full_addresses() -> None:
    doc = {
        "terraform": {
            "required_providers": {
                "aws": {"source": "aws", "version": "6.25.0"},
                "random": {"source": "hashicorp/random", "version": "3.7.2"},
                "databricks": {"source": "Databricks/databricks", "version": "1.99.0"},
            }
        }
    }
    assert [p.address for p in provider_locks.required_providers(doc)] == [
        "registry.terraform.io/databricks/databricks",
        "registry.terraform.io/hashicorp/aws",
        "registry.terraform.io/hashicorp/random",
    ]


def test_a_lock_file_must_lock_exactly_what_the_stacks_require() -> None:
    required = [AWS, RANDOM]
    good = lock_text((AWS.address, "6.25.0", True), (RANDOM.address, "3.7.2", True))
    assert provider_locks.lock_problems("mlflow", required, good) == []
    [missing] = provider_locks.lock_problems("mlflow", required, None)
    assert (
        missing
        == "provider_locks/mlflow.terraform.lock.hcl: missing (generate it with `make provider-locks` and commit it)"
    )
    stale = lock_text((AWS.address, "6.24.0", True), ("registry.terraform.io/hashicorp/tls", "4.0.0", True))
    problems = provider_locks.lock_problems("mlflow", required, stale)
    assert problems == [
        "provider_locks/mlflow.terraform.lock.hcl: registry.terraform.io/hashicorp/aws is locked for '6.24.0', the stacks require '6.25.0'",
        "provider_locks/mlflow.terraform.lock.hcl: registry.terraform.io/hashicorp/random is required but not locked",
        "provider_locks/mlflow.terraform.lock.hcl: registry.terraform.io/hashicorp/tls is locked but no stack requires it",
        "provider_locks/mlflow.terraform.lock.hcl: regenerate it with `make provider-locks` and commit it",
    ]
    unhashed = lock_text((AWS.address, "6.25.0", False))
    assert "has no checksums" in provider_locks.lock_problems("bootstrap", [AWS], unhashed)[0]
    assert "not a lock file" in provider_locks.lock_problems("bootstrap", [AWS], "provider {")[0]


def test_the_lock_check_runs_terraform_only_on_fitting_lock_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline comparison first; then ``init -backend=false -lockfile=readonly`` per kind on the
    stack's terraform block alone (no backend: no state is touched)."""
    tool = write_tool(tmp_path / "bin", "terraform", FAKE_TERRAFORM)
    monkeypatch.setenv("TERRAFORM_BINARY_NAME", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    outdir = fake_outdir(tmp_path, kinds=("bootstrap",))
    target = Target("bootstrap", "dev", outdir)
    stack = json.loads((target.directory / "cdk.tf.json").read_text())
    stack["terraform"] = {
        "backend": {"s3": {"bucket": "b"}},
        "required_providers": {"aws": {"source": "aws", "version": "6.25.0"}},
    }
    (target.directory / "cdk.tf.json").write_text(json.dumps(stack))
    console = Captured()
    assert not provider_locks.check(tmp_path, [target], console)
    assert "bootstrap.terraform.lock.hcl: missing" in console.stderr
    assert read_log(tmp_path / "calls.jsonl") == []

    provider_locks.lock_path(tmp_path, "bootstrap").parent.mkdir()
    provider_locks.lock_path(tmp_path, "bootstrap").write_text(lock_text((AWS.address, "6.25.0", True)))
    assert provider_locks.check(tmp_path, [target], console)
    [call] = read_log(tmp_path / "calls.jsonl")
    assert call["args"] == ["init", "-backend=false", "-input=false", "-no-color", "-lockfile=readonly"]
    assert call["stack"] == "bootstrap"


def test_a_make_started_from_within_make_sees_only_its_own_variables() -> None:
    inherited = {
        "PATH": "/bin",
        "SUITE": "1",
        "ENV": "dev",
        "MAKEFLAGS": " -- SUITE=1 ENV=dev",
        "MAKELEVEL": "1",
    }
    assert runner.outside_make(inherited) == {"PATH": "/bin"}
    # Outside make nothing is taken away, not even a variable that happens to share a name.
    assert runner.outside_make({"PATH": "/bin", "ENV": "dev"}) == {"PATH": "/bin", "ENV": "dev"}
