"""Issue 7, bad input: the whole app (``main.py`` as a subprocess) against broken environment files.

Each case copies the repository's current env_specific_vars/ and backend_configs/ into a scratch
directory, breaks one thing, and runs main.py there over an existing cdktf.out. Every case must
give exactly one ``error: file: key: problem`` line, exit non-zero, print no traceback, and leave
the old cdktf.out byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_config.loader import BACKEND_DIR, TFVARS_DIR
from tests.conftest import ROOT

pytestmark = pytest.mark.state

DEV_VARS = f"{TFVARS_DIR}/dev.tfvars"
DEV_BACKEND = f"{BACKEND_DIR}/dev.config"
TST_VARS = f"{TFVARS_DIR}/tst.tfvars"
TST_BACKEND = f"{BACKEND_DIR}/tst.config"


def sub(path: str, pattern: str, replacement: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        file = root / path
        text, n = re.subn(pattern, replacement, file.read_text(), count=1, flags=re.MULTILINE)
        assert n == 1, f"{pattern!r} not found in {path}: the shipped file changed, update the case"
        file.write_text(text)

    return mutate


def append(path: str, text: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        with (root / path).open("a") as f:
            f.write("\n" + text + "\n")

    return mutate


def write(path: str, data: bytes) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / path).write_bytes(data)

    return mutate


def delete(path: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        (root / path).unlink()

    return mutate


def delete_dirs(root: Path) -> None:
    shutil.rmtree(root / TFVARS_DIR)
    shutil.rmtree(root / BACKEND_DIR)


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Path], None]
    file: str
    key: str | None  # a regex; None when the problem is the file itself
    says: str  # a fragment of the problem text


CASES = [
    # --- tfvars: syntax --------------------------------------------------------------------
    Case("unterminated-string", sub(DEV_VARS, r'^aws_region(\s*)= "us-east-1"', r'aws_region\1= "us-east-1'), DEV_VARS, r"line \d+", "HCL syntax error"),
    Case("unclosed-map", sub(DEV_VARS, r"^(\s*CostCenter.*\n)\}", r"\1"), DEV_VARS, r"line \d+", "HCL syntax error"),
    Case("block-not-attribute", sub(DEV_VARS, r"^tags = \{", "tags {"), DEV_VARS, "tags", "blocks are not allowed"),
    Case("interpolation", sub(DEV_VARS, r'vpc_cidr(\s*)= "[^"]+"', r'vpc_cidr\1= "${var.cidr}"'), DEV_VARS, r"network\.vpc_cidr", "expressions and interpolations"),
    Case("empty-tfvars", write(DEV_VARS, b""), DEV_VARS, None, "file is empty"),
    Case("not-utf8", write(DEV_VARS, b"environment = \"dev\"\n\xff\xfe\n"), DEV_VARS, None, "cannot read file"),
    # --- tfvars: types, keys, values ------------------------------------------------------------
    Case("bool-as-string", sub(DEV_VARS, r"^is_production(\s*)= false", r'is_production\1= "no"'), DEV_VARS, "is_production", "valid boolean"),
    Case("int-as-string", sub(DEV_VARS, r"noncurrent_version_expiration_days(\s*)= \d+", r'noncurrent_version_expiration_days\1= "ninety"'), DEV_VARS, r"state_bucket\.noncurrent_version_expiration_days", "valid integer"),
    Case("unknown-top-level-key", append(DEV_VARS, 'instance_size = "large"'), DEV_VARS, "instance_size", "unknown key"),
    Case("misspelt-nested-key", sub(DEV_VARS, r"single_nat_gateway(\s*)=", r"single_nat_gatway\1="), DEV_VARS, r"network\.single_nat_gatway", "unknown key"),
    Case("bad-bootstrap-state", sub(DEV_VARS, r'^bootstrap_state(\s*)= "\w+"', r'bootstrap_state\1= "remote"'), DEV_VARS, "bootstrap_state", "'local' or 's3'"),
    Case("cidr-prefix-33", sub(DEV_VARS, r'vpc_cidr(\s*)= "[^"]+"', r'vpc_cidr\1= "10.10.0.0/33"'), DEV_VARS, r"network\.vpc_cidr", "not a valid CIDR"),
    Case("cidr-host-bits", sub(DEV_VARS, r'vpc_cidr(\s*)= "[^"]+"', r'vpc_cidr\1= "10.10.0.1/16"'), DEV_VARS, r"network\.vpc_cidr", "has host bits set"),
    Case("subnet-outside-vpc", sub(DEV_VARS, r'public_subnet_cidrs(\s*)= \["[^"]+"', r'public_subnet_cidrs\1= ["10.99.0.0/24"'), DEV_VARS, r"network\.public_subnet_cidrs\[0\]", "outside vpc_cidr"),
    Case("bad-region", sub(DEV_VARS, r'^aws_region(\s*)= "[^"]+"', r'aws_region\1= "us-east-9"'), DEV_VARS, "aws_region", "not an AWS region"),
    Case("zone-of-other-region", sub(DEV_VARS, r'availability_zones(\s*)= \["[^"]+"', r'availability_zones\1= ["eu-west-1a"'), DEV_VARS, r"network\.availability_zones\[0\]", "not an availability zone"),
    Case("environment-name-mismatch", sub(DEV_VARS, r'^environment(\s*)= "dev"', r'environment\1= "tst"'), DEV_VARS, "environment", "file is for environment 'dev'"),
    Case("secret-looking-value", sub(DEV_VARS, r'Owner(\s*)= "[^"]+"', r'Owner\1= "AKIAIOSFODNN7EXAMPL1"'), DEV_VARS, r"tags\.Owner", "AWS access key id"),
    Case("secret-by-name", append(DEV_VARS, 'db_password = "hunter2hunter2"'), DEV_VARS, "db_password", "secrets never go in tfvars"),
    Case("reserved-tag", sub(DEV_VARS, r"^(\s*)Owner(\s*)=", r'\1Environment = "x"\n\1Owner\2='), DEV_VARS, r"tags\.Environment", "set by the app"),
    # --- backend configs ------------------------------------------------------------------------
    Case("other-envs-bucket", sub(DEV_BACKEND, r'^bucket(\s*)= "[^"]+"', r'bucket\1= "mlopspltf-prd-s3-tf-backend"'), DEV_BACKEND, "bucket", "uses 'mlopspltf-dev-s3-tf-backend'"),
    Case("other-envs-lock-table", sub(TST_BACKEND, r'^dynamodb_table(\s*)= "[^"]+"', r'dynamodb_table\1= "mlopspltf-prd-ddb-tf-backend"'), TST_BACKEND, "dynamodb_table", "uses 'mlopspltf-tst-ddb-tf-backend'"),
    Case("encrypt-false", sub(DEV_BACKEND, r"^encrypt(\s*)= true", r"encrypt\1= false"), DEV_BACKEND, "encrypt", "must be true"),
    Case("encrypt-as-string", sub(DEV_BACKEND, r"^encrypt(\s*)= true", r'encrypt\1= "yes"'), DEV_BACKEND, "encrypt", "valid boolean"),
    Case("state-key-in-config", append(DEV_BACKEND, 'key = "shared/terraform.tfstate"'), DEV_BACKEND, "key", "set per stack by the app"),
    Case("credential-in-config", append(DEV_BACKEND, 'secret_key = "abc"'), DEV_BACKEND, "secret_key", "credentials do not belong"),
    Case("removed-role-arn", append(DEV_BACKEND, 'role_arn = "arn:aws:iam::123456789012:role/tf"'), DEV_BACKEND, "role_arn", "assume_role"),
    Case("unknown-backend-key", append(DEV_BACKEND, "use_lockfiles = true"), DEV_BACKEND, "use_lockfiles", "unknown key"),
    Case("region-differs-from-tfvars", sub(DEV_BACKEND, r'^region(\s*)= "[^"]+"', r'region\1= "eu-west-1"'), DEV_BACKEND, "region", "aws_region"),
    Case("no-locking", sub(DEV_BACKEND, r"^use_lockfile\s*= true\n?", ""), DEV_BACKEND, "dynamodb_table", "no state locking"),
    Case("wrong-kms-alias", sub(DEV_BACKEND, r'^kms_key_id(\s*)= "[^"]+"', r'kms_key_id\1= "alias/mlopspltf-prd-tf-backend"'), DEV_BACKEND, "kms_key_id", "alias/mlopspltf-dev-tf-backend"),
    Case("full-terraform-block", write(DEV_BACKEND, b'terraform {\n  backend "s3" {\n    bucket = "mlopspltf-dev-s3-tf-backend"\n  }\n}\n'), DEV_BACKEND, "terraform", "blocks are not allowed"),
    Case("backend-syntax-error", sub(DEV_BACKEND, r'^bucket(\s*)= "[^"]+"', r"bucket\1="), DEV_BACKEND, r"line \d+", "HCL syntax error"),
    Case("empty-backend-config", write(DEV_BACKEND, b""), DEV_BACKEND, None, "file is empty"),
    # --- files ------------------------------------------------------------------------------------
    Case("missing-backend-config", delete(DEV_BACKEND), DEV_VARS, None, f"no matching backend config {DEV_BACKEND}"),
    Case("missing-tfvars", delete(TST_VARS), TST_BACKEND, None, f"no matching variables file {TST_VARS}"),
    Case("stray-file", write(f"{TFVARS_DIR}/dev.tfvars.bak", b'environment = "dev"\n'), f"{TFVARS_DIR}/dev.tfvars.bak", None, "unexpected file"),
    Case("bad-environment-file-name", write(f"{BACKEND_DIR}/Dev_1.config", b'bucket = "x"\n'), f"{BACKEND_DIR}/Dev_1.config", None, "environment name"),
    Case("no-environment-files", delete_dirs, TFVARS_DIR, None, "no environments found"),
]  # fmt: skip


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


@dataclass(frozen=True)
class Run:
    proc: subprocess.CompletedProcess[str]
    before: dict[str, str]
    after: dict[str, str]
    leftovers: list[str]


def _run_case(base: Path, env: dict[str, str], case: Case) -> Run:
    root = base / case.id
    shutil.copytree(ROOT / TFVARS_DIR, root / TFVARS_DIR)
    shutil.copytree(ROOT / BACKEND_DIR, root / BACKEND_DIR)
    previous = root / "cdktf.out"
    (previous / "stacks" / "bootstrap-dev").mkdir(parents=True)
    (previous / "manifest.json").write_text('{"version": "previous run"}\n')
    (previous / "stacks" / "bootstrap-dev" / "cdk.tf.json").write_text('{"previous": true}\n')
    before = _tree(previous)
    case.mutate(root)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    leftovers = sorted(p.name for p in root.iterdir() if p.name.startswith(".cdktf.out"))
    return Run(proc, before, _tree(previous), leftovers)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every case's main.py run, a few at a time: each is a fresh Python process (~1 s of imports)."""
    env = {k: v for k, v in os.environ.items() if k not in {"CDKTF_OUTDIR", "MLOPS_ENVS", "MLOPS_STACKS"}}
    env.update(JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CHECKPOINT_DISABLE="1")
    base = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda c: (c.id, _run_case(base, env, c)), CASES)
        return dict(results)


def test_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(runs: dict[str, Run], case: Case) -> None:
    run = runs[case.id]
    proc = run.proc
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    where = re.escape(case.file) + (f": {case.key}: " if case.key is not None else ": ")
    assert re.match(f"error: {where}", errors[0]), errors[0]
    assert case.says in errors[0], errors[0]
    assert run.after == run.before, "the previous cdktf.out was modified"
    assert run.leftovers == []
