"""The config layer: every kind of bad input gives one clear problem naming file and key.

Every case starts from the test-owned environments of tests/fixtures/envs and changes one thing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from platform_config.environment import EnvironmentSettings
from platform_config.errors import ConfigError
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load, select
from tests.conftest import scratch_env_name, shipped_env_names
from tests.fixtures.envs import FIXTURES, ConfigFiles, add_environment

DEV = f"{TFVARS_DIR}/dev.tfvars"
DEV_BACKEND = f"{BACKEND_DIR}/dev.config"
PRD = f"{TFVARS_DIR}/prd.tfvars"
PRD_BACKEND = f"{BACKEND_DIR}/prd.config"

Edit = Callable[[ConfigFiles], ConfigFiles]


def files() -> ConfigFiles:
    return ConfigFiles(FIXTURES)


@pytest.mark.parametrize("env", shipped_env_names())
def test_every_shipped_environment_is_valid(repo_envs: list[Environment], env: str) -> None:
    assert env in {e.name for e in repo_envs}


def test_config_objects_are_frozen() -> None:
    env = files().load()[0]
    with pytest.raises(Exception, match="frozen"):
        env.settings.aws_region = "eu-west-1"  # type: ignore[misc]
    assert isinstance(env.settings, EnvironmentSettings)


# (id, edit of the fixture files, file, expected key prefix, expected message fragment)
CASES: list[tuple[str, Edit, str, str, str]] = [
    ("unknown key", lambda f: f.set(DEV, "colour", "blue"), DEV, "colour", "unknown key"),
    ("unknown nested key", lambda f: f.set(DEV, "state_bucket.sse_algo", 1), DEV, "state_bucket.sse_algo", "unknown key"),
    ("missing key", lambda f: f.delete(DEV, "aws_region"), DEV, "aws_region", "missing required key"),
    ("missing nested key", lambda f: f.delete(DEV, "network.vpc_cidr"), DEV, "network.vpc_cidr", "missing required key"),
    ("missing block", lambda f: f.delete(DEV, "databricks"), DEV, "databricks", "missing required key"),
    ("wrong type (bool)", lambda f: f.set(DEV, "is_production", "no"), DEV, "is_production", "valid boolean"),
    ("wrong type (int)", lambda f: f.set(DEV, "state_bucket.noncurrent_version_expiration_days", "90"), DEV,
     "state_bucket.noncurrent_version_expiration_days", "valid integer"),
    ("wrong type (list)", lambda f: f.set(DEV, "network.availability_zones", "us-east-1a"), DEV,
     "network.availability_zones", "valid tuple"),
    ("out of range", lambda f: f.set(DEV, "state_bucket.noncurrent_version_expiration_days", 0), DEV,
     "state_bucket.noncurrent_version_expiration_days", "greater than or equal to 1"),
    ("bad enum", lambda f: f.set(DEV, "bootstrap_state", "gcs"), DEV, "bootstrap_state", "'local' or 's3'"),
    ("invalid region", lambda f: f.set(DEV, "aws_region", "us-moon-1"), DEV, "aws_region", "not an AWS region"),
    ("invalid CIDR", lambda f: f.set(DEV, "network.vpc_cidr", "10.10.0.0/33"), DEV, "network.vpc_cidr",
     "not a valid CIDR"),
    ("CIDR with host bits", lambda f: f.set(DEV, "network.vpc_cidr", "10.10.0.1/16"), DEV, "network.vpc_cidr",
     "has host bits set"),
    ("overlapping CIDRs", lambda f: f.set(DEV, "network.private_subnet_cidrs", ["10.10.0.128/25", "10.10.32.0/20"]),
     DEV, "network.private_subnet_cidrs[0]", "overlaps network.public_subnet_cidrs[0]"),
    ("subnet outside the VPC", lambda f: f.set(DEV, "network.database_subnet_cidrs", ["10.99.64.0/24", "10.10.65.0/24"]),
     DEV, "network.database_subnet_cidrs[0]", "outside vpc_cidr"),
    ("subnet count != zones", lambda f: f.set(DEV, "network.database_subnet_cidrs", ["10.10.64.0/24"]), DEV,
     "network.database_subnet_cidrs", "one per availability zone"),
    ("zone of another region", lambda f: f.set(DEV, "network.availability_zones", ["us-east-1a", "eu-west-1b"]), DEV,
     "network.availability_zones[1]", "not an availability zone of us-east-1"),
    ("zone twice", lambda f: f.set(DEV, "network.availability_zones", ["us-east-1a", "us-east-1a"]), DEV,
     "network.availability_zones", "lists a zone twice"),
    ("one zone only", lambda f: f.set(DEV, "network.availability_zones", ["us-east-1a"]), DEV,
     "network.availability_zones", "at least 2"),
    ("env name mismatch", lambda f: f.set(DEV, "environment", "tst"), DEV, "environment",
     "file is for environment 'dev'"),
    ("HCL syntax error", lambda f: f.replace(DEV, "is_production = false", "is_production = = false"), DEV,
     "line 5", "HCL syntax error"),
    ("unterminated string", lambda f: f.replace(DEV, '"us-east-1"\n', '"us-east-1\n'), DEV, "line", "HCL syntax error"),
    ("unclosed map", lambda f: f.append(DEV, "extra = {"), DEV, "line", "HCL syntax error"),
    ("interpolation", lambda f: f.set(DEV, "aws_region", "${var.region}"), DEV, "aws_region",
     "interpolations are not allowed"),
    ("block instead of attribute", lambda f: f.replace(DEV, "tags = {", "tags {"), DEV, "tags",
     "blocks are not allowed"),
    ("secret-looking key", lambda f: f.set(DEV, "db_password", "hunter2"), DEV, "db_password",
     "secrets never go in tfvars"),
    ("secret-looking value", lambda f: f.set(DEV, "tags.Owner", "AKIAABCDEFGHIJKLMNOP"), DEV, "tags.Owner",
     "AWS access key id"),
    ("reserved tag", lambda f: f.set(DEV, "tags.Environment", "x"), DEV, "tags.Environment", "set by the app"),
    ("single NAT in production", lambda f: f.set(PRD, "network.single_nat_gateway", True), PRD,
     "network.single_nat_gateway", "production"),
    ("backend: other env's bucket", lambda f: f.set(DEV_BACKEND, "bucket", "mlopspltf-prd-s3-tf-backend"), DEV_BACKEND,
     "bucket", "uses 'mlopspltf-dev-s3-tf-backend'"),
    ("backend: other env's table", lambda f: f.set(PRD_BACKEND, "dynamodb_table", "mlopspltf-dev-ddb-tf-backend"),
     PRD_BACKEND, "dynamodb_table", "uses 'mlopspltf-prd-ddb-tf-backend'"),
    ("backend: other env's KMS alias", lambda f: f.set(DEV_BACKEND, "kms_key_id", "alias/mlopspltf-prd-tf-backend"),
     DEV_BACKEND, "kms_key_id", "'alias/mlopspltf-dev-tf-backend' or a key ARN"),
    ("backend: key set", lambda f: f.set(DEV_BACKEND, "key", "x/terraform.tfstate"), DEV_BACKEND, "key",
     "set per stack"),
    ("backend: credentials", lambda f: f.set(DEV_BACKEND, "secret_key", "abc"), DEV_BACKEND, "secret_key",
     "credentials do not belong"),
    ("backend: top-level role_arn", lambda f: f.set(DEV_BACKEND, "role_arn", "arn:aws:iam::123456789012:role/tf"),
     DEV_BACKEND, "role_arn", "assume_role"),
    ("backend: unknown key", lambda f: f.set(DEV_BACKEND, "lock_table", "x"), DEV_BACKEND, "lock_table",
     "unknown key"),
    ("backend: no locking", lambda f: f.delete(DEV_BACKEND, "use_lockfile"), DEV_BACKEND, "dynamodb_table",
     "no state locking"),
    ("backend: encrypt false", lambda f: f.set(DEV_BACKEND, "encrypt", False), DEV_BACKEND, "encrypt", "must be true"),
    ("backend: wrong type", lambda f: f.set(DEV_BACKEND, "encrypt", "yes"), DEV_BACKEND, "encrypt", "valid boolean"),
    ("backend: region mismatch", lambda f: f.set(DEV_BACKEND, "region", "us-west-2"), DEV_BACKEND, "region",
     "aws_region"),
    ("backend: invalid region", lambda f: f.set(DEV_BACKEND, "region", "mars-1"), DEV_BACKEND, "region",
     "not an AWS region"),
    ("backend: no kms key for SSE-KMS bucket", lambda f: f.delete(DEV_BACKEND, "kms_key_id"), DEV_BACKEND,
     "kms_key_id", "only accepts SSE-KMS"),
    ("backend: missing bucket", lambda f: f.delete(DEV_BACKEND, "bucket"), DEV_BACKEND, "bucket",
     "missing required key"),
    ("backend: syntax error", lambda f: f.replace(DEV_BACKEND, "encrypt      = true", "encrypt      = [true"),
     DEV_BACKEND, "line", "HCL syntax error"),
    ("backend: full terraform block", lambda f: f.write(DEV_BACKEND,
     'terraform {\n  backend "s3" {\n    bucket = "mlopspltf-dev-s3-tf-backend"\n  }\n}\n'), DEV_BACKEND,
     "terraform", "blocks are not allowed"),
    ("backend: bad assume_role", lambda f: f.set(DEV_BACKEND, "assume_role", {"role_arn": "me"}), DEV_BACKEND,
     "assume_role.role_arn", "should match pattern"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "file", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_gives_one_problem_naming_file_and_key(
    edit: Edit, file: str, key: str, fragment: str
) -> None:
    problems = edit(files()).problems()
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file == file
    assert problem.key.startswith(key), problem
    assert fragment in problem.message, problem
    assert str(problem).startswith(f"{file}: {problem.key}: ")


def test_tfvars_without_backend_config() -> None:
    f = files()
    del f.backends[PRD_BACKEND]
    [problem] = f.problems()
    assert problem.file == PRD
    assert f"no matching backend config {PRD_BACKEND}" in problem.message


def test_backend_config_without_tfvars() -> None:
    f = files()
    del f.tfvars[PRD]
    [problem] = f.problems()
    assert problem.file == PRD_BACKEND
    assert f"no matching variables file {PRD}" in problem.message


def test_empty_environment_set() -> None:
    f = files()
    f.tfvars.clear()
    f.backends.clear()
    [problem] = f.problems()
    assert "no environments found" in problem.message


@pytest.mark.parametrize("path", [DEV, DEV_BACKEND])
@pytest.mark.parametrize("text", ["", "\n  \n", "# only a comment\n// and another\n"])
def test_empty_file(path: str, text: str) -> None:
    [problem] = files().write(path, text).problems()
    assert (problem.file, problem.message) == (path, "file is empty (or only comments)")


def test_bad_environment_file_name() -> None:
    f = files()
    f.tfvars[f"{TFVARS_DIR}/Dev-2.tfvars"] = f.tfvars[DEV]
    [problem] = f.problems()
    assert problem.file == f"{TFVARS_DIR}/Dev-2.tfvars"
    assert "lowercase" in problem.message


def test_unexpected_file_in_config_dir() -> None:
    f = files()
    f.backends[f"{DEV_BACKEND}.bak"] = f.backends[DEV_BACKEND]
    [problem] = f.problems()
    assert problem.file == f"{DEV_BACKEND}.bak"
    assert "unexpected file" in problem.message


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / TFVARS_DIR, tmp_path / TFVARS_DIR)
    shutil.copytree(FIXTURES / BACKEND_DIR, tmp_path / BACKEND_DIR)
    (tmp_path / DEV).write_bytes(b'environment = "dev"\n\xff\xfe\n')
    with pytest.raises(ConfigError) as exc:
        load(tmp_path)
    [problem] = exc.value.problems
    assert problem.file == DEV and "cannot read file" in problem.message


def test_problems_from_several_files_are_all_reported() -> None:
    f = files().set(DEV, "network.vpc_cidr", "10.10.0.0/33").set(PRD_BACKEND, "encrypt", False)
    assert {(p.file, p.key) for p in f.problems()} == {(DEV, "network.vpc_cidr"), (PRD_BACKEND, "encrypt")}


def test_unknown_environment_selection() -> None:
    with pytest.raises(ConfigError) as exc:
        select(files().load(), ["dev", "stg"], "$MLOPS_ENVS")
    [problem] = exc.value.problems
    assert problem.file == "$MLOPS_ENVS"
    assert "unknown environment 'stg' (known: dev, prd)" in problem.message


def test_load_selects_the_named_environments_but_validates_all() -> None:
    assert [e.name for e in load(FIXTURES, ["prd"])] == ["prd"]


def test_aes256_bucket_needs_no_kms_key_id() -> None:
    f = files().set(DEV, "state_bucket.sse_algorithm", "AES256").delete(DEV_BACKEND, "kms_key_id")
    dev = next(e for e in f.load() if e.name == "dev")
    assert dev.settings.state_bucket.sse_algorithm == "AES256"
    assert dev.backend.kms_key_id is None


def test_new_environment_is_two_files() -> None:
    new = scratch_env_name(FIXTURES)
    envs = add_environment(files(), new, 40).load()
    assert sorted(e.name for e in envs) == sorted(["dev", "prd", new])
    added = next(e for e in envs if e.name == new)
    assert added.settings.network.vpc_cidr == "10.40.0.0/16"
    assert added.backend.bucket == f"mlopspltf-{new}-s3-tf-backend"
