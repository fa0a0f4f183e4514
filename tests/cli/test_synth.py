"""``ops synth``: in-process synthesis, and the contract of a configuration error (exit 2, one
``error: file: key: problem`` line each, no traceback, the previous cdktf.out untouched)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops import cli
from tests.cli.support import repo_copy
from tests.conftest import ROOT, Synthesized, scratch_env_name, shipped_env_names
from tests.fixtures.real_values import STAND_INS


def test_synth_writes_the_same_stacks_as_the_app(
    synth: Synthesized, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = repo_copy(tmp_path / "repo")
    rc = cli.main(["--root", str(root), "synth", "--env", "dev", "--stack", "bootstrap"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "bootstrap-dev" in out and "1 stacks synthesized to" in out
    produced = root / "cdktf.out" / "stacks" / "bootstrap-dev" / "cdk.tf.json"
    # The copy's files carry real-looking stand-ins (tests/fixtures/real_values.py); of them the
    # bootstrap stack holds only the CI roles' repository.
    (stand_in,) = [(new, old) for old, new in STAND_INS.items() if "/mlops-infra" in old]
    copied = produced.read_bytes().replace(stand_in[0].strip('"').encode(), stand_in[1].strip('"').encode())
    assert copied == (synth.stack_dir("bootstrap-dev") / "cdk.tf.json").read_bytes()
    assert sorted(p.name for p in (root / "cdktf.out" / "stacks").iterdir()) == ["bootstrap-dev"]


def test_a_configuration_error_is_reported_and_changes_nothing(tmp_path: Path) -> None:
    root = repo_copy(tmp_path / "repo")
    previous = root / "cdktf.out" / "manifest.json"
    previous.parent.mkdir()
    previous.write_text("previous synthesis")
    tfvars = root / "env_specific_vars" / "dev.tfvars"
    tfvars.write_text(tfvars.read_text() + "\nno_such_key = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ops", "--root", str(root), "synth"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith("error: env_specific_vars/dev.tfvars: no_such_key: ")
    assert "Traceback" not in proc.stderr
    assert previous.read_text() == "previous synthesis"
    assert sorted(p.name for p in (root / "cdktf.out").iterdir()) == ["manifest.json"]


def test_an_unknown_environment_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo_copy(tmp_path / "repo")
    unknown = scratch_env_name()
    assert cli.main(["--root", str(root), "synth", "--env", unknown]) == 2
    err = capsys.readouterr().err
    assert f"error: --env: unknown environment '{unknown}' (known: {', '.join(shipped_env_names())})" in err
    assert not (root / "cdktf.out").exists()
