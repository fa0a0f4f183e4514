"""The database-user function and its invocation, synthesized alone (assets written to disk)."""

from __future__ import annotations

import json
import re
import stat
import zipfile
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from cdktf import App, TerraformResource, TerraformStack

from constructs_lib import db_users
from constructs_lib.aws_provider import aws_provider
from constructs_lib.db_users import DatabaseUsers, DatabaseUsersProps
from constructs_lib.db_users_lambda import handler
from tests.constructs.test_platform_constructs import ACCOUNT, KEY, addresses

SECRET = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:rds!db-1234"
PROPS = DatabaseUsersProps(
    name="unit",
    partition="aws",
    region="eu-west-1",
    account_id=ACCOUNT,
    master_secret_arn=SECRET,
    kms_key_arn=KEY,
    db_host="unit.abc.eu-west-1.rds.amazonaws.com",
    db_port=3306,
    db_names=("mlflow", "mlflow_auth"),
    db_user="mlflow",
    db_resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    subnet_ids=["subnet-a", "subnet-b"],
    security_group_id="sg-users",
    log_retention_days=30,
)
EXPECTED_ADDRESSES = {
    "aws_lambda_function.db_users",
    "aws_lambda_invocation.db_users",
    "aws_iam_role.db_users",
    "aws_iam_role_policy.db_users",
    "aws_cloudwatch_log_group.db_users",
}
EVENT_KEYS = {"secret_arn", "host", "port", "databases", "user", "region", "secrets", "redis"}
GENERATED = (f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:unit-admin-password",)
REDIS = (
    "unit",
    f"arn:aws:elasticache:eu-west-1:{ACCOUNT}:replicationgroup:unit",
    f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:unit-redis",
)
_JSONENCODE = re.compile(r"^\$\{jsonencode\(\{(.*)\}\)\}$", re.S)
_MEMBER = re.compile(r'"(\w+)" = ("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{[^}]*\}|[^,]+)(?:, |$)')


def jsonencode_members(expression: str) -> dict[str, str]:
    """``${jsonencode({"k" = v, ...})}`` -> ``{k: v}``, each value as written (a quoted literal,
    a number or a reference)."""
    match = _JSONENCODE.match(expression)
    assert match, expression
    members = dict(_MEMBER.findall(match.group(1)))
    assert ", ".join(f'"{k}" = {v}' for k, v in members.items()) == match.group(1), expression
    return members


@dataclass
class Synthesized:
    doc: dict[str, Any]
    stack_dir: Path

    def resource(self, rtype: str) -> dict[str, Any]:
        out: dict[str, Any] = self.doc["resource"][rtype]["db_users"]
        return out

    def archive(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.stack_dir / self.resource("aws_lambda_function")["filename"])


def synthesize(outdir: Path, props: DatabaseUsersProps = PROPS) -> Synthesized:
    """A bare stack with the construct, synthesized to ``outdir`` (cdktf writes the asset there).

    Its network path is one stand-in resource, ``null_resource.network_path``."""
    app = App(outdir=str(outdir))
    stack = TerraformStack(app, "db-users-unit")
    aws_provider(stack, "eu-west-1", {"Project": "unit"})
    path = TerraformResource(stack, "network_path", terraform_resource_type="null_resource")
    DatabaseUsers(stack, "db_users", replace(props, depends_on=(path,)))
    app.synth()
    stack_dir = outdir / "stacks" / "db-users-unit"
    return Synthesized(json.loads((stack_dir / "cdk.tf.json").read_text()), stack_dir)


def test_bundle_is_the_handler_and_the_driver_sources(tmp_path: Path) -> None:
    dist = metadata.distribution(db_users.DRIVER)
    installed = {str(f) for f in dist.files or ()}
    # The installed driver has compiled files (pip records them): the bundle must leave them out.
    assert any("__pycache__" in f for f in installed)
    first = db_users.bundle(tmp_path / "one" / "code.zip")
    with zipfile.ZipFile(first) as archive:
        entries = archive.infolist()
        files = [e.filename for e in entries]
        own = {module.name: module for module in db_users.MODULES}
        assert set(own) == {"handler.py", "generated_secrets.py"}
        assert set(own) <= set(files) and "pymysql/__init__.py" in files and "pymysql/connections.py" in files
        assert f"pymysql-{dist.version}.dist-info/licenses/LICENSE" in files
        assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
        # Every driver file comes from the installed wheel, byte for byte; the handler from the repository.
        assert set(files) - set(own) <= installed
        for name, source in own.items():
            assert archive.read(name) == source.read_bytes()
        for entry in entries:
            if entry.filename not in own:
                assert archive.read(entry) == Path(str(dist.locate_file(entry.filename))).read_bytes()
            # Readable by the user Lambda runs the code as, whatever the umask; not deflated (the
            # bytes would depend on the zlib build); one time.
            assert stat.S_IMODE(entry.external_attr >> 16) == 0o644, entry.filename
            assert entry.compress_type == zipfile.ZIP_STORED
            assert entry.date_time == db_users.ARCHIVE_TIME
        assert files == sorted(files)
    # Another build, elsewhere and later: the same bytes.
    second = db_users.bundle(tmp_path / "two" / "code.zip")
    assert second.read_bytes() == first.read_bytes()


def test_database_users_alone(tmp_path: Path) -> None:
    out = synthesize(tmp_path / "out")
    assert addresses(out.doc) == EXPECTED_ADDRESSES | {"null_resource.network_path"}
    function = out.resource("aws_lambda_function")
    assert function["function_name"] == "unit-db-users"
    assert (function["runtime"], function["handler"]) == (db_users.RUNTIME, "handler.handler")
    assert function["reserved_concurrent_executions"] == 1
    assert function["timeout"] == db_users.TIMEOUT_SECONDS
    assert function["vpc_config"] == {
        "subnet_ids": ["subnet-a", "subnet-b"],
        "security_group_ids": ["sg-users"],
    }
    assert function["role"] == "${aws_iam_role.db_users.arn}"
    # Its permissions and its log group exist before Lambda checks or writes them.
    assert function["depends_on"] == ["aws_iam_role_policy.db_users", "aws_cloudwatch_log_group.db_users"]
    assert "environment" not in function  # nothing to encrypt, nothing secret in its configuration
    # The code: the asset cdktf wrote, named and pinned by its content hash.
    asset_hash = function["source_code_hash"]
    assert re.fullmatch(r"assets/db_users_code_[0-9A-F]+/[0-9A-F]{32}/db-users\.zip", function["filename"])
    assert function["filename"].split("/")[2] == asset_hash
    with out.archive() as archive:
        names = archive.namelist()
        assert "handler.py" in names and "pymysql/__init__.py" in names
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        assert archive.read("handler.py") == db_users.HANDLER.read_bytes()

    logs = out.resource("aws_cloudwatch_log_group")
    assert (logs["name"], logs["kms_key_id"], logs["retention_in_days"]) == (
        "/aws/lambda/unit-db-users",
        KEY,
        30,
    )

    trust = json.loads(out.resource("aws_iam_role")["assume_role_policy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]
    statements = {s["Sid"]: s for s in json.loads(out.resource("aws_iam_role_policy")["policy"])["Statement"]}
    assert set(statements) == {
        "ReadMasterSecret",
        "DecryptMasterSecret",
        "WriteOwnLogs",
        "ManageNetworkInterfaces",
        "DescribeNetworkInterfaces",
    }
    # The master secret and nothing else; the key only through Secrets Manager.
    assert (statements["ReadMasterSecret"]["Action"], statements["ReadMasterSecret"]["Resource"]) == (
        "secretsmanager:GetSecretValue",
        SECRET,
    )
    decrypt = statements["DecryptMasterSecret"]
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", KEY)
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }
    assert statements["WriteOwnLogs"]["Resource"] == "${aws_cloudwatch_log_group.db_users.arn}:*"
    assert statements["ManageNetworkInterfaces"]["Resource"] == f"arn:aws:ec2:eu-west-1:{ACCOUNT}:*/*"
    # "*" only for the two Describe actions, which have no resource-level permissions.
    assert [s["Action"] for s in statements.values() if s["Resource"] == "*"] == [
        ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]
    ]

    invocation = out.resource("aws_lambda_invocation")
    assert invocation["function_name"] == "${aws_lambda_function.db_users.function_name}"
    assert invocation["lifecycle_scope"] == "CREATE_ONLY"
    assert jsonencode_members(invocation["input"]) == {
        "secret_arn": json.dumps(SECRET),
        "host": json.dumps(PROPS.db_host),
        "port": "3306",
        "databases": '["mlflow", "mlflow_auth"]',
        "user": '"mlflow"',
        "region": '"eu-west-1"',
        "secrets": "[]",
    }
    # A re-created database or a changed handler replaces the invocation, which runs it again.
    assert invocation["triggers"] == {"db_resource_id": PROPS.db_resource_id, "code_hash": asset_hash}
    # The call waits for its network path (given), the function for its role and logs (above).
    assert invocation["depends_on"] == ["null_resource.network_path"]


def test_with_generated_secrets_and_the_cache(tmp_path: Path) -> None:
    """The secrets it fills and the group whose token it sets: exactly those, nothing broader."""
    out = synthesize(tmp_path / "out", replace(PROPS, generated_secret_arns=GENERATED, redis=REDIS))
    statements = {s["Sid"]: s for s in json.loads(out.resource("aws_iam_role_policy")["policy"])["Statement"]}
    generate = statements["GenerateSecretValues"]
    assert generate["Resource"] == [*GENERATED, REDIS[2]]
    assert set(generate["Action"]) == {
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    }
    assert statements["RandomValues"] == {
        "Sid": "RandomValues",
        "Effect": "Allow",
        "Action": "secretsmanager:GetRandomPassword",
        "Resource": "*",
    }
    assert statements["EncryptSecretValues"]["Resource"] == KEY
    assert statements["EncryptSecretValues"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}
    }
    redis = statements["SetRedisAuthToken"]
    assert (set(redis["Action"]), redis["Resource"]) == (
        {"elasticache:DescribeReplicationGroups", "elasticache:ModifyReplicationGroup"},
        REDIS[1],
    )
    # All literals here: the expression reads as JSON once its `"key" = ` are `"key": `.
    expression = (
        out.resource("aws_lambda_invocation")["input"].removeprefix("${jsonencode(").removesuffix(")}")
    )
    event = json.loads(re.sub(r'"(\w+)" = ', r'"\1": ', expression))
    assert event["secrets"] == list(GENERATED)
    assert event["redis"] == {"replication_group_id": "unit", "secret_arn": REDIS[2]}
    assert handler.Request.of(event).redis == handler.Redis("unit", REDIS[2])


def test_the_code_hash_is_stable_across_synths(tmp_path: Path) -> None:
    """Two synths (two build directories, two archives) name the same code: a plan made in one CI
    job is applied from another one's synthesis, and an unchanged handler never runs again."""
    one, two = synthesize(tmp_path / "one"), synthesize(tmp_path / "two")
    first, second = one.resource("aws_lambda_function"), two.resource("aws_lambda_function")
    assert (first["filename"], first["source_code_hash"]) == (second["filename"], second["source_code_hash"])
    # The archives themselves are the same bytes (fixed file times and modes).
    archives = [s.stack_dir / s.resource("aws_lambda_function")["filename"] for s in (one, two)]
    assert archives[0].read_bytes() == archives[1].read_bytes()


def test_a_missing_driver_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(RuntimeError, match=r"bundles PyMySQL .* install the app's requirements"):
        db_users.bundle(tmp_path / "code.zip")
