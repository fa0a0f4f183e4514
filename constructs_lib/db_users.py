"""MLflow's least-privilege database user, created by a Lambda function that Terraform invokes.

The instances log in as ``mlflow`` with IAM database authentication and never see the master
credentials. Only this function reads the RDS-managed master secret: Terraform invokes it once
per database and handler version (``aws_lambda_invocation``), and it creates the user and its
grants idempotently (``db_users_lambda/handler.py``). Nothing of the secret passes through
Terraform: the event carries the secret's ARN, the result only the user and its grants.

The function's code is part of what this construct synthesizes, so, unlike the other
constructs, it reads files: the handler next to this module and the ``pymysql`` package of the
app's own environment (pinned in requirements.txt), written into one reproducible zip file that
cdktf copies into the stack's assets.
"""

from __future__ import annotations

import functools
import json
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from cdktf import AssetType, Fn, ITerraformDependable, TerraformAsset
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction, LambdaFunctionVpcConfig
from cdktf_cdktf_provider_aws.lambda_invocation import LambdaInvocation
from constructs import Construct

from constructs_lib.network import assume_role_policy
from constructs_lib.observability import log_group
from constructs_lib.policy import skip_checks

HANDLER = Path(__file__).parent / "db_users_lambda" / "handler.py"
# The handler's own modules, flat next to it in the zip.
MODULES = (HANDLER, HANDLER.with_name("generated_secrets.py"))
# The distribution bundled next to the handler (boto3 comes with the Lambda runtime).
DRIVER = "PyMySQL"
# The newest Python runtime: provider 6.25.0 accepts what the AWS SDK's Runtime enum lists
# (internal/service/lambda/function.go: "runtime" ... enum.Validate[awstypes.Runtime]), which
# has python3.14 since aws-sdk-go-v2 release-2025-10-31 (terraform-provider-aws issue #44984).
RUNTIME = "python3.14"
# The database: seconds. Setting the Redis AUTH token: two ElastiCache modifications of minutes each,
# the first time (generated_secrets.WAIT); Lambda's maximum.
TIMEOUT_SECONDS = 900
# Every file's time in the archive (zip times have no time zone; 1980 is the earliest).
ARCHIVE_TIME = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DatabaseUsersProps:
    name: str  # function, role and log group: <name>-db-users
    partition: str
    region: str
    account_id: str
    master_secret_arn: str  # the RDS-managed master secret: only this function reads it
    kms_key_arn: str  # encrypts the secret and the function's log group
    db_host: str
    db_port: float  # a number in the event
    db_names: tuple[str, ...]  # the first is RDS's own; the others are created
    db_user: str  # the user to create (the instances' login)
    db_resource_id: str  # a re-created database gets a new one: the function runs again
    subnet_ids: list[str]
    security_group_id: str
    log_retention_days: int
    # Secrets created empty by the stack, given a generated value here (never by Terraform).
    generated_secret_arns: tuple[str, ...] = ()
    # The cache: (replication group id, group ARN, token secret ARN); its AUTH token is set here.
    redis: tuple[str, str, str] | None = None
    # What the call needs besides the function: its network path to the database, Secrets
    # Manager and the CA bundle (security group rules, routes, endpoints).
    depends_on: Sequence[ITerraformDependable] = field(default_factory=tuple)


def bundle(archive: Path) -> Path:
    """Write the function's code to the zip file ``archive``: ``handler.py``, and the ``pymysql``
    package with its metadata and licence, as the installed wheel holds them.

    The archive is built here rather than by cdktf (an ARCHIVE asset): node's zip step cost the
    whole synthesis about 0.5 s and 185 MiB. Its bytes depend on the sources alone, so the asset
    hash (of the file) is the same on every machine: no ``__pycache__`` (compiled files differ
    between machines and runs), entries sorted, one fixed time, fixed modes, and stored rather
    than deflated (compressed bytes depend on the zlib build).
    """
    try:
        dist = metadata.distribution(DRIVER)
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            f"the database-user function bundles {DRIVER} from the synthesizing environment, which "
            f"has none: install the app's requirements (requirements.txt pins it)"
        ) from None
    sources = {module.name: module for module in MODULES}
    for file in dist.files or ():
        wanted = file.parts[0] == "pymysql" or file.name == "METADATA" or "licenses" in file.parts
        if wanted and "__pycache__" not in file.parts and file.suffix != ".pyc":
            sources["/".join(file.parts)] = Path(str(dist.locate_file(file)))
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, source in sorted(sources.items()):
            entry = zipfile.ZipInfo(name, date_time=ARCHIVE_TIME)
            entry.create_system = 3  # Unix: the mode below is read
            # Lambda runs the code as another user than the one that unpacks it: world-readable.
            entry.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(entry, source.read_bytes())
    return archive


@functools.cache
def _build_root() -> tempfile.TemporaryDirectory[str]:
    # cdktf copies an asset's file when the app synthesizes, after every construct exists: the
    # build directory lives until the process exits (the object's finalizer removes it).
    return tempfile.TemporaryDirectory(prefix="mlops-db-users-")


@functools.cache
def _code_archive() -> Path:
    """The function's zip, built once per process for every stack that deploys it."""
    return bundle(Path(_build_root().name) / "db-users.zip")


def _secret_statements(s: DatabaseUsersProps) -> list[dict[str, Any]]:
    """Fill the stack's empty secrets and set the Redis token (generated_secrets.py)."""
    arns = [*s.generated_secret_arns, *([s.redis[2]] if s.redis else [])]
    if not arns:
        return []
    statements: list[dict[str, Any]] = [
        {
            "Sid": "GenerateSecretValues",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ],
            "Resource": arns,
        },
        {
            # GetRandomPassword acts on no resource (Service Authorization Reference).
            "Sid": "RandomValues",
            "Effect": "Allow",
            "Action": "secretsmanager:GetRandomPassword",
            "Resource": "*",
        },
        {
            # Secrets Manager encrypts a new version under a data key of the stack's key for us
            # (Secrets Manager User Guide, "Permissions for the KMS key": GenerateDataKey, Decrypt).
            "Sid": "EncryptSecretValues",
            "Effect": "Allow",
            "Action": "kms:GenerateDataKey",
            "Resource": s.kms_key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{s.region}.amazonaws.com"}},
        },
    ]
    if s.redis:
        statements.append(
            {
                "Sid": "SetRedisAuthToken",
                "Effect": "Allow",
                "Action": ["elasticache:DescribeReplicationGroups", "elasticache:ModifyReplicationGroup"],
                "Resource": s.redis[1],
            }
        )
    return statements


class DatabaseUsers(Construct):
    """``aws_lambda_function.db_users`` (its role, inline policy and log group) and
    ``aws_lambda_invocation.db_users``, which creates the user.

    Handle: ``invocation``: whatever logs in as the user (the instances) depends on it.
    """

    def __init__(self, scope: Construct, construct_id: str, props: DatabaseUsersProps) -> None:
        super().__init__(scope, construct_id)
        s = props
        name = f"{s.name}-db-users"
        self._code = TerraformAsset(
            self,
            "code",
            path=str(_code_archive()),
            type=AssetType.FILE,
        )
        # Created here, not by Lambda at the first call: encrypted, with the stack's retention.
        logs = log_group(
            self,
            "db_users",
            name=f"/aws/lambda/{name}",
            kms_key_arn=s.kms_key_arn,
            retention_days=s.log_retention_days,
        )

        # No source condition in the trust policy: a role cannot be passed to another account's
        # function (iam:PassRole), and this one is passed only to the function below.
        role = IamRole(self, "role", name=name, assume_role_policy=assume_role_policy("lambda.amazonaws.com"))
        role.override_logical_id("db_users")
        ec2 = f"arn:{s.partition}:ec2:{s.region}:{s.account_id}"
        statements: list[dict[str, Any]] = [
            {
                "Sid": "ReadMasterSecret",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": s.master_secret_arn,
            },
            {
                # The master secret (and the generated ones) are encrypted with the stack's key;
                # only through Secrets Manager.
                "Sid": "DecryptMasterSecret",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": s.kms_key_arn,
                "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{s.region}.amazonaws.com"}},
            },
            *_secret_statements(s),
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{logs.arn}:*",
            },
            # Lambda creates the function's network interfaces in the private subnets with this
            # role. The actions of the AWS-managed AWSLambdaVPCAccessExecutionRole, not the policy
            # itself: that one also lets the function create and write any log group ("*").
            # Lambda's VPC guide allows the interface actions to be narrowed to the account's
            # resources ("arn:aws:ec2:<region>:<account>:*/*"); the Describe actions have no
            # resource-level permissions.
            {
                "Sid": "ManageNetworkInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": f"{ec2}:*/*",
            },
            {
                "Sid": "DescribeNetworkInterfaces",
                "Effect": "Allow",
                "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
                "Resource": "*",
            },
        ]
        policy = IamRolePolicy(
            self,
            "policy",
            role=role.id,
            name="create-mlflow-db-user",
            policy=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        policy.override_logical_id("db_users")

        self._function = LambdaFunction(
            self,
            "function",
            function_name=name,
            description=f"Creates the MLflow database user {s.db_user} (IAM authentication), its databases "
            "and grants, and the secrets Terraform never sees",
            role=role.arn,
            runtime=RUNTIME,
            handler="handler.handler",
            architectures=["arm64"],  # pure Python: the cheaper architecture
            filename=self._code.path,
            source_code_hash=self._code.asset_hash,
            timeout=TIMEOUT_SECONDS,
            memory_size=128,
            # One creator at a time; nobody else can start copies of a function holding the master key.
            reserved_concurrent_executions=1,
            vpc_config=LambdaFunctionVpcConfig(
                subnet_ids=s.subnet_ids, security_group_ids=[s.security_group_id]
            ),
            # Lambda checks the role's interface permissions at create time, and would create
            # the log group itself (unencrypted, kept forever) if it ran first.
            depends_on=[policy, logs],
        )
        self._function.override_logical_id("db_users")
        skip_checks(
            self._function,
            {
                "CKV_AWS_116": "invoked only synchronously by Terraform (aws_lambda_invocation), which "
                "reports a failure as a failed apply; a dead-letter queue receives only failed "
                "asynchronous events",
                "CKV_AWS_272": "the code is built from the repository at synthesis and pinned by its "
                "hash in the reviewed plan (source_code_hash); a Signer profile would sign the same bytes",
                "CKV_AWS_50": "one short synchronous call per apply, with its logs in the function's log "
                "group; X-Ray would add a tracing endpoint and permissions for nothing to correlate",
            },
        )

        # CREATE_ONLY: invoked when created or replaced, never on destroy (the provider's
        # buildInput sends the input unchanged in this scope, without its terraform_key block).
        # Replaced when the input changes, or a trigger: a new database or new handler code.
        self._invocation = LambdaInvocation(
            self,
            "invocation",
            function_name=self._function.function_name,
            lifecycle_scope="CREATE_ONLY",
            input=Fn.jsonencode(
                {
                    "secret_arn": s.master_secret_arn,
                    "host": s.db_host,
                    "port": s.db_port,
                    "databases": list(s.db_names),
                    "user": s.db_user,
                    "region": s.region,
                    "secrets": list(s.generated_secret_arns),
                    "redis": {"replication_group_id": s.redis[0], "secret_arn": s.redis[2]}
                    if s.redis
                    else None,
                }
            ),
            triggers={"db_resource_id": s.db_resource_id, "code_hash": self._code.asset_hash},
            depends_on=list(s.depends_on),
        )
        self._invocation.override_logical_id("db_users")

    @property
    def invocation(self) -> LambdaInvocation:
        return self._invocation

    @property
    def function_name(self) -> str:
        return self._function.function_name
