"""``make fmt`` / ``make lint`` helpers and the stack-selection benchmark's memory probe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import bench_selection, fmt, lint_workflows
from scripts.stack_runner import ROOT
from tests.pipeline_support import Captured


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
    problems = fmt.format_hcl(check=True, root=tmp_path)
    assert [p.splitlines()[0] for p in problems] == [
        "backend_configs/qa.config: not formatted (make fmt)",
        "env_specific_vars/qa.tfvars: not formatted (make fmt)",
    ]
    assert "+is_production = false" in problems[1]
    assert fmt.format_hcl(check=False, root=tmp_path) == [
        "backend_configs/qa.config: formatted",
        "env_specific_vars/qa.tfvars: formatted",
    ]
    assert config.read_text() == 'bucket       = "b"\nuse_lockfile = true\n'
    assert fmt.format_hcl(check=True, root=tmp_path) == []


@pytest.mark.skipif(shutil.which("terraform") is None, reason="Terraform CLI not installed")
@pytest.mark.usefixtures("quiet_terraform")
def test_shipped_environment_files_are_formatted() -> None:
    assert fmt.format_hcl(check=True) == []


def test_a_missing_linter_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lint_workflows, "TOOLS_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    result = lint_workflows.zizmor()
    assert result.missing and not result.ok
    assert "run `make test`" in result.output
    assert lint_workflows.actionlint() is None


def test_memory_probe_counts_the_child_processes() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; x = bytearray(64 * 2**20); time.sleep(5)"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if bench_selection.tree_rss_kib(child.pid) > 64 * 1024:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        own = bench_selection.tree_rss_kib(child.pid)
        tree = bench_selection.tree_rss_kib(os.getpid())
        assert own > 64 * 1024
        assert tree >= own
    finally:
        child.kill()
        child.wait()


def test_bench_selection_script_has_its_make_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "bench-selection: setup" in makefile
    assert "$(PY) scripts/bench_selection.py" in makefile


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
