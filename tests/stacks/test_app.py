"""main.py: summary, safe replacement of cdktf.out, clean failures, and new environments."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from platform_config import naming
from stacks.app import summary, synthesize
from tests.conftest import ROOT, Synthesized, shipped_env_names
from tests.fixtures.envs import ConfigFiles


def test_summary_has_one_line_per_stack(synth: Synthesized) -> None:
    lines = summary(synth.outdir).splitlines()
    assert lines[0].split() == ["stack", "env", "resources", "backend", "state"]
    rows = [line.split() for line in lines[1:-1]]
    envs = shipped_env_names()
    # Kinds in deployment order, environments sorted within a kind.
    assert [r[0] for r in rows] == [naming.stack_id(kind, env) for kind in naming.STACK_KINDS for env in envs]
    for name, env, count, backend, key in rows:
        doc = synth.stack(name)
        assert env == naming.parse_stack_id(name)[1]
        assert int(count) == sum(len(v) for v in doc.get("resource", {}).values())
        kind = naming.parse_stack_id(name)[0]
        if kind == "bootstrap" and synth.env(env).settings.bootstrap_state == "local":
            assert (backend, key) == ("local", f"../../../{naming.local_state_path(kind, env)}")
        else:
            assert (backend, key) == ("s3", naming.state_key(kind))
    assert lines[-1] == f"{len(rows)} stacks synthesized to {synth.outdir}"


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
    known = ", ".join(shipped_env_names())
    assert f"error: $MLOPS_ENVS: unknown environment 'stg' (known: {known})" in result.stderr
    result = run_main(root, MLOPS_STACKS="mlflow,eks")
    assert result.returncode == 2
    assert "unknown stack kind 'eks'" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree(root / "cdktf.out") == before


def test_main_py_says_each_files_placeholders_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `npx cdktf synth` prints before its summary (main.py): one warning line per file with a
    count, as ops synth does, not one line per placeholder."""
    import importlib.util
    import types

    from platform_config import placeholders
    from platform_config.loader import load

    envs = load(ROOT, [])
    found = [f for env in envs for f in placeholders.find(env)]
    assert found, "the shipped files hold no placeholder: nothing to see here"
    fake = types.ModuleType("stacks.app")
    fake.synthesize = lambda envs, kinds, outdir, pause_gc: outdir  # type: ignore[attr-defined]
    fake.summary = lambda outdir: "summary"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stacks.app", fake)
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("MLOPS_ENVS", raising=False)
    monkeypatch.delenv("MLOPS_STACKS", raising=False)
    spec = importlib.util.spec_from_file_location("main_under_test", ROOT / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "placeholder" in line]
    files = sorted({f.file for f in found})
    assert len(warnings) == len(files)
    for file in files:
        (line,) = [w for w in warnings if w.startswith(f"warning: {file}: ")]
        assert f": {sum(f.file == file for f in found)} documentation placeholder(s)" in line
