"""Creates MLflow's least-privilege database user (placeholder: the real handler replaces this file).

Event: ``secret_arn``, ``host``, ``port``, ``database``, ``user``, ``region``; returns
``{"user", "database", "grants"}``. Bundled by ``constructs_lib.db_users`` into the Lambda function.
"""

from typing import Any


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    raise NotImplementedError
