"""?plugin=rds_iam&rds_iam_region=R: each new connection logs in with a fresh RDS IAM token
(valid 15 minutes; an open connection outlives it)."""

import threading
from typing import Any

import boto3
from sqlalchemy import event
from sqlalchemy.engine import CreateEnginePlugin

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def token(host: str, port: int, user: str, region: str) -> str:
    with _lock:
        if region not in _clients:
            _clients[region] = boto3.client("rds", region_name=region)
    value: str = _clients[region].generate_db_auth_token(host, port, user, region)
    return value


class RdsIamAuth(CreateEnginePlugin):  # type: ignore[misc]
    def __init__(self, url: Any, kwargs: Any) -> None:
        super().__init__(url, kwargs)
        self.region = url.query["rds_iam_region"]

    def update_url(self, url: Any) -> Any:
        return url.difference_update_query(["rds_iam_region"])

    def engine_created(self, engine: Any) -> None:
        @event.listens_for(engine, "do_connect")  # type: ignore[untyped-decorator]
        def fresh_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            cparams["password"] = token(cparams["host"], cparams["port"], cparams["user"], self.region)
