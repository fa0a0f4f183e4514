"""The two IAM policies of a state backend: plan (read state, take the lock) and apply (read/write).

What a run sends is Terraform's S3 backend (internal/backend/remote-state/s3/client.go): ``get``
reads the state (GetObject); ``lockWithFile`` writes ``<key>.tflock`` with ``IfNoneMatch: *`` and,
with ``encrypt``/``kms_key_id``, ``ServerSideEncryption: aws:kms`` + ``SSEKMSKeyId``, so S3 asks KMS
for a data key on the caller's behalf (kms:GenerateDataKey); ``unlockWithFile`` reads the lockfile
back and deletes it (GetObject, DeleteObject); ``lockWithDynamoDB``/``unlockWithDynamoDB`` put and
delete the ``<bucket>/<key>`` item and ``getMD5`` reads the ``<bucket>/<key>-md5`` item; only
``Put`` (a state write) writes the state object and ``putMD5`` the digest item. Nothing calls
kms:Encrypt: S3 and DynamoDB encrypt with data keys.
"""

from __future__ import annotations

import json
from typing import Any

from platform_config import naming

STATE_OBJECTS = f"{naming.STATE_KEY_PREFIX}/*"
LOCK_FILES = f"{naming.STATE_KEY_PREFIX}/*.tflock"


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _list_bucket(bucket_arn: str) -> dict[str, Any]:
    return {"Sid": "ListStateBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn}


def state_plan_policy(bucket_arn: str, bucket_name: str, table_arn: str, kms_key_arn: str) -> str:
    """Read every state and take/release its lock; no state (or digest) can be written or deleted."""
    return _policy(
        _list_bucket(bucket_arn),
        {
            "Sid": "ReadStateAndLockFiles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/{STATE_OBJECTS}",
        },
        {
            "Sid": "WriteLockFilesOnly",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{bucket_arn}/{LOCK_FILES}",
        },
        {
            "Sid": "ReadLockTable",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem"],
            "Resource": table_arn,
        },
        {
            # The lock items are "<bucket>/<key>"; the "-md5" digest items do not match.
            "Sid": "WriteLockItemsOnly",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:DeleteItem"],
            "Resource": table_arn,
            "Condition": {
                "ForAllValues:StringLike": {
                    "dynamodb:LeadingKeys": [f"{bucket_name}/{naming.STATE_KEY_PREFIX}/*/terraform.tfstate"]
                }
            },
        },
        {
            "Sid": "StateEncryption",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
        },
    )


def state_apply_policy(bucket_arn: str, table_arn: str, kms_key_arn: str) -> str:
    """Read and write every state, its lock and its digest."""
    return _policy(
        _list_bucket(bucket_arn),
        {
            "Sid": "ReadWriteStateAndLockFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{bucket_arn}/{STATE_OBJECTS}",
        },
        {
            "Sid": "DynamoDBLocking",
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
            ],
            "Resource": table_arn,
        },
        {
            "Sid": "StateEncryption",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": kms_key_arn,
        },
    )
