"""main.py: summary, safe replacement of cdktf.out, clean failures, and new environments."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from platform_config import naming
from stacks.app import summary, synthesize
from tests.config_support import ConfigFiles, add_environment
from tests.conftest import ROOT, Synthesized


def test_summary_has_one_line_per_stack(synth: Synthesized) -> None:
    lines = summary(synth.outdir).splitlines()
    assert lines[0].split() == ["stack", "env", "resources", "backend", "state"]
    rows = [line.split() for line in lines[1:-1]]
    assert [r[0] for r in rows[:3]] == ["bootstrap-dev", "bootstrap-prd", "bootstrap-tst"]
    assert len(rows) == 9
    for name, env, count, backend, key in rows:
        doc = synth.stack(name)
        assert env == naming.parse_stack_id(name)[1]
        assert int(count) == sum(len(v) for v in doc.get("resource", {}).values())
        assert backend == "s3"
        assert key == naming.state_key(naming.parse_stack_id(name)[0])
    assert lines[-1] == f"9 stacks synthesized to {synth.outdir}"


def test_fourth_environment_needs_no_code_change(synth_with: Any) -> None:
    """Adding an environment is adding two files (derived here from dev's)."""
    envs = [e for e in add_environment(ConfigFiles(), "qa", 40).load() if e.name == "qa"]
    out: Synthesized = synth_with(envs)
    assert out.stack_names() == ["bootstrap-qa", "databricks-qa", "mlflow-qa"]
    for name in out.stack_names():
        s3 = out.stack(name)["terraform"]["backend"]["s3"]
        assert s3["bucket"] == "mlopspltf-qa-s3-tf-backend"
    bucket = out.resources("bootstrap-qa", "aws_s3_bucket")["state"]
    assert bucket["bucket"] == "mlopspltf-qa-s3-tf-backend"


def test_resynthesis_replaces_output_but_keeps_terraform_working_files(tmp_path: Path) -> None:
    envs = [e for e in ConfigFiles().load() if e.name == "dev"]
    outdir = tmp_path / "cdktf.out"
    (outdir / "stacks" / "databricks-dev" / ".terraform").mkdir(parents=True)
    (outdir / "stacks" / "databricks-dev" / ".terraform" / "marker").write_text("init done")
    (outdir / "stacks" / "databricks-dev" / ".terraform.lock.hcl").write_text("# lock")
    (outdir / "stacks" / "removed-stack").mkdir()
    synthesize(envs, ("databricks",), outdir)
    stack_dir = outdir / "stacks" / "databricks-dev"
    assert (stack_dir / "cdk.tf.json").is_file()
    assert (stack_dir / ".terraform" / "marker").read_text() == "init done"
    assert (stack_dir / ".terraform.lock.hcl").read_text() == "# lock"
    assert not (outdir / "stacks" / "removed-stack").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"], "no temporary directory left behind"


def run_main(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def project_copy(tmp_path: Path) -> Path:
    for name in ("env_specific_vars", "backend_configs"):
        shutil.copytree(ROOT / name, tmp_path / name)
    old = tmp_path / "cdktf.out" / "stacks" / "mlflow-dev"
    old.mkdir(parents=True)
    (old / "cdk.tf.json").write_text('{"old": true}')
    (tmp_path / "cdktf.out" / "manifest.json").write_text("{}")
    return tmp_path


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_config_error_exits_cleanly_and_leaves_output_untouched(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    before = tree(root / "cdktf.out")
    tfvars = root / "env_specific_vars" / "tst.tfvars"
    tfvars.write_text(tfvars.read_text().replace('"10.20.0.0/16"', '"10.20.0.0/99"'))
    result = run_main(root)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: env_specific_vars/tst.tfvars: network.vpc_cidr: '10.20.0.0/99' is not a valid CIDR" in (
        result.stderr
    )
    assert tree(root / "cdktf.out") == before


def test_unknown_environment_or_kind_selection(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    before = tree(root / "cdktf.out")
    result = run_main(root, MLOPS_ENVS="dev,stg", MLOPS_STACKS="mlflow")
    assert result.returncode == 2
    assert "error: $MLOPS_ENVS: unknown environment 'stg' (known: dev, prd, tst)" in result.stderr
    result = run_main(root, MLOPS_STACKS="mlflow,eks")
    assert result.returncode == 2
    assert "unknown stack kind 'eks'" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(root / "cdktf.out") == before
