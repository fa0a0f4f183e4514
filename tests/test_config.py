"""The config layer: every kind of bad input gives one clear problem naming file and key."""

from __future__ import annotations

import pytest

from platform_config.environment import EnvironmentSettings
from platform_config.errors import ConfigError
from platform_config.loader import select
from tests.config_support import ConfigFiles, add_environment

DEV_VARS = "env_specific_vars/dev.tfvars"
DEV_BACKEND = "backend_configs/dev.config"
PRD_VARS = "env_specific_vars/prd.tfvars"
TST_BACKEND = "backend_configs/tst.config"


def test_shipped_environments_are_valid() -> None:
    envs = ConfigFiles().load()
    assert [e.name for e in envs] == ["dev", "prd", "tst"]
    prd = next(e for e in envs if e.name == "prd")
    assert prd.settings.is_production
    assert len(prd.settings.network.availability_zones) == 3
    assert not prd.settings.network.single_nat_gateway


def test_config_objects_are_frozen() -> None:
    env = ConfigFiles().load()[0]
    with pytest.raises(Exception, match="frozen"):
        env.settings.aws_region = "eu-west-1"  # type: ignore[misc]
    assert isinstance(env.settings, EnvironmentSettings)


# (description, file, pattern, replacement, expected key, expected message fragment)
CASES = [
    ("unknown key", DEV_VARS, r"^is_production = false$", "is_production = false\ncolour = \"blue\"",
     "colour", "unknown key"),
    ("unknown nested key", DEV_VARS, r"^  sse_algorithm", "  sse_algo = 1\n  sse_algorithm",
     "state_bucket.sse_algo", "unknown key"),
    ("missing key", DEV_VARS, r'^aws_region .*$', "", "aws_region", "missing required key"),
    ("missing nested key", DEV_VARS, r'^  vpc_cidr .*$', "", "network.vpc_cidr", "missing required key"),
    ("wrong type (bool)", DEV_VARS, r"^is_production = false$", 'is_production = "no"',
     "is_production", "valid boolean"),
    ("wrong type (int)", DEV_VARS, r"noncurrent_version_expiration_days     = 90",
     'noncurrent_version_expiration_days     = "90"', "state_bucket.noncurrent_version_expiration_days",
     "valid integer"),
    ("wrong type (list)", DEV_VARS, r'availability_zones    = \[.*\]', 'availability_zones    = "us-east-1a"',
     "network.availability_zones", "valid tuple"),
    ("out of range", DEV_VARS, r"noncurrent_version_expiration_days     = 90",
     "noncurrent_version_expiration_days     = 0", "state_bucket.noncurrent_version_expiration_days",
     "greater than or equal to 1"),
    ("bad enum", DEV_VARS, r'^bootstrap_state = "s3"', 'bootstrap_state = "gcs"', "bootstrap_state",
     "'local' or 's3'"),
    ("invalid region", DEV_VARS, r'^aws_region    = "us-east-1"', 'aws_region    = "us-moon-1"',
     "aws_region", "not an AWS region"),
    ("invalid CIDR", DEV_VARS, r'"10.10.0.0/16"', '"10.10.0.0/33"', "network.vpc_cidr", "not a valid CIDR"),
    ("CIDR with host bits", DEV_VARS, r'"10.10.0.0/16"', '"10.10.0.1/16"', "network.vpc_cidr",
     "not a valid CIDR"),
    ("overlapping CIDRs", DEV_VARS, r'"10.10.16.0/20"', '"10.10.0.128/25"', "network.private_subnet_cidrs[0]",
     "overlaps network.public_subnet_cidrs[0]"),
    ("subnet outside the VPC", DEV_VARS, r'"10.10.64.0/24"', '"10.99.64.0/24"',
     "network.database_subnet_cidrs[0]", "outside vpc_cidr"),
    ("subnet count != zones", DEV_VARS, r'database_subnet_cidrs = \[("10.10.64.0/24"), .*\]',
     r"database_subnet_cidrs = [\1]", "network.database_subnet_cidrs", "one per availability zone"),
    ("zone of another region", DEV_VARS, r'"us-east-1b"', '"eu-west-1b"', "network.availability_zones[1]",
     "not an availability zone of us-east-1"),
    ("one zone only", DEV_VARS, r'availability_zones    = \[.*\]', 'availability_zones    = ["us-east-1a"]',
     "network.availability_zones", "at least 2"),
    ("env name mismatch", DEV_VARS, r'^environment   = "dev"', 'environment   = "tst"', "environment",
     "file is for environment 'dev'"),
    ("HCL syntax error", DEV_VARS, r"^is_production = false$", "is_production = = false", "line 5",
     "HCL syntax error"),
    ("interpolation", DEV_VARS, r'^aws_region    = "us-east-1"', 'aws_region    = "${var.region}"',
     "aws_region", "interpolations are not allowed"),
    ("block instead of attribute", DEV_VARS, r"^tags = \{", "tags {", "tags", "blocks are not allowed"),
    ("secret-looking key", DEV_VARS, r"^is_production = false$", 'is_production = false\ndb_password = "hunter2"',
     "db_password", "secrets never go in tfvars"),
    ("secret-looking value", DEV_VARS, r'Owner      = "mlops-platform"', 'Owner      = "AKIAABCDEFGHIJKLMNOP"',
     "tags.Owner", "AWS access key id"),
    ("reserved tag", DEV_VARS, r'Owner      = "mlops-platform"', 'Environment = "x"', "tags.Environment",
     "set by the app"),
    ("single NAT in production", PRD_VARS, r"single_nat_gateway    = false", "single_nat_gateway    = true",
     "network.single_nat_gateway", "production"),
    ("backend: other env's bucket", DEV_BACKEND, r"mlopspltf-dev-s3-tf-backend", "mlopspltf-prd-s3-tf-backend",
     "bucket", "uses 'mlopspltf-dev-s3-tf-backend'"),
    ("backend: other env's table", TST_BACKEND, r"mlopspltf-tst-ddb-tf-backend", "mlopspltf-dev-ddb-tf-backend",
     "dynamodb_table", "uses 'mlopspltf-tst-ddb-tf-backend'"),
    ("backend: key set", DEV_BACKEND, r"^encrypt ", 'key = "x/terraform.tfstate"\nencrypt ', "key",
     "set per stack"),
    ("backend: credentials", DEV_BACKEND, r"^encrypt ", 'secret_key = "abc"\nencrypt ', "secret_key",
     "credentials do not belong"),
    ("backend: unknown key", DEV_BACKEND, r"^encrypt ", "lock_table = \"x\"\nencrypt ", "lock_table",
     "unknown key"),
    ("backend: no locking", DEV_BACKEND, r"^use_lockfile = true$", "", "dynamodb_table", "no state locking"),
    ("backend: encrypt false", DEV_BACKEND, r"^encrypt      = true", "encrypt      = false", "encrypt",
     "must be true"),
    ("backend: wrong type", DEV_BACKEND, r"^encrypt      = true", 'encrypt      = "yes"', "encrypt",
     "valid boolean"),
    ("backend: region mismatch", DEV_BACKEND, r'"us-east-1"', '"us-west-2"', "region", "aws_region"),
    ("backend: invalid region", DEV_BACKEND, r'"us-east-1"', '"mars-1"', "region", "not an AWS region"),
    ("backend: no kms key for SSE-KMS bucket", DEV_BACKEND, r"^kms_key_id .*$", "", "kms_key_id",
     "only accepts SSE-KMS"),
    ("backend: missing bucket", DEV_BACKEND, r"^bucket .*$", "", "bucket", "missing required key"),
    ("backend: syntax error", DEV_BACKEND, r"^encrypt      = true", "encrypt      = [true", "line",
     "HCL syntax error"),
    ("backend: bad assume_role", DEV_BACKEND, r"^encrypt ", 'assume_role = { role_arn = "me" }\nencrypt ',
     "assume_role.role_arn", "should match pattern"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "pattern", "replacement", "key", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_gives_one_problem_naming_file_and_key(
    file: str, pattern: str, replacement: str, key: str, fragment: str
) -> None:
    problems = ConfigFiles().sub(file, pattern, replacement).problems()
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file == file
    assert problem.key.startswith(key), problem
    assert fragment in problem.message, problem
    assert str(problem).startswith(f"{file}: {problem.key}: ")


def test_tfvars_without_backend_config() -> None:
    files = ConfigFiles()
    del files.backends["backend_configs/tst.config"]
    [problem] = files.problems()
    assert problem.file == "env_specific_vars/tst.tfvars"
    assert "no matching backend config backend_configs/tst.config" in problem.message


def test_backend_config_without_tfvars() -> None:
    files = ConfigFiles()
    del files.tfvars["env_specific_vars/tst.tfvars"]
    [problem] = files.problems()
    assert problem.file == "backend_configs/tst.config"
    assert "no matching variables file env_specific_vars/tst.tfvars" in problem.message


def test_empty_environment_set() -> None:
    files = ConfigFiles()
    files.tfvars.clear()
    files.backends.clear()
    [problem] = files.problems()
    assert "no environments found" in problem.message


@pytest.mark.parametrize("text", ["\n  \n", "# only a comment\n// and another\n"])
def test_empty_file(text: str) -> None:
    files = ConfigFiles()
    files.tfvars[DEV_VARS] = text
    [problem] = files.problems()
    assert (problem.file, problem.message) == (DEV_VARS, "file is empty (or only comments)")


def test_bad_environment_file_name() -> None:
    files = ConfigFiles()
    files.tfvars["env_specific_vars/Dev-2.tfvars"] = files.tfvars[DEV_VARS]
    [problem] = files.problems()
    assert problem.file == "env_specific_vars/Dev-2.tfvars"
    assert "lowercase" in problem.message


def test_unexpected_file_in_config_dir() -> None:
    files = ConfigFiles()
    files.backends["backend_configs/dev.config.bak"] = files.backends[DEV_BACKEND]
    [problem] = files.problems()
    assert problem.file == "backend_configs/dev.config.bak"
    assert "unexpected file" in problem.message


def test_problems_from_several_files_are_all_reported() -> None:
    files = ConfigFiles()
    files.sub(DEV_VARS, r'"10.10.0.0/16"', '"10.10.0.0/33"')
    files.sub(TST_BACKEND, r"^encrypt        = true", "encrypt        = false")
    problems = files.problems()
    assert {(p.file, p.key) for p in problems} == {(DEV_VARS, "network.vpc_cidr"), (TST_BACKEND, "encrypt")}


def test_unknown_environment_selection() -> None:
    envs = ConfigFiles().load()
    with pytest.raises(ConfigError) as exc:
        select(envs, ["dev", "stg"], "$MLOPS_ENVS")
    [problem] = exc.value.problems
    assert problem.file == "$MLOPS_ENVS"
    assert "unknown environment 'stg' (known: dev, prd, tst)" in problem.message


def test_aes256_bucket_needs_no_kms_key_id() -> None:
    files = ConfigFiles()
    files.sub(DEV_VARS, r'sse_algorithm                          = "aws:kms"', 'sse_algorithm = "AES256"')
    files.sub(DEV_BACKEND, r"^kms_key_id .*$", "")
    dev = next(e for e in files.load() if e.name == "dev")
    assert dev.settings.state_bucket.sse_algorithm == "AES256"
    assert dev.backend.kms_key_id is None


def test_new_environment_is_two_files() -> None:
    envs = add_environment(ConfigFiles(), "qa", 40).load()
    assert [e.name for e in envs] == ["dev", "prd", "qa", "tst"]
