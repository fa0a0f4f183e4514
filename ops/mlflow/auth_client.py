"""Runs in ``.venv-mlflow`` (ops/mlflow/venv.py): one call of MLflow's own ``AuthServiceClient``
(mlflow/server/auth/client.py) against a tracking server, signed in as MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD from the environment (never the command line).

    python auth_client.py URL  <  {"call": "create_user", "args": {...}}

Prints one JSON line: {"ok": true, "result": ...} or {"ok": false, "status": 403, "error": "..."}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from mlflow.server.auth.client import AuthServiceClient

CALLS = {
    "create_user",
    "get_user",
    "update_user_password",
    "update_user_admin",
    "delete_user",
    "grant_user_permission",
    "revoke_user_permission",
    "get_user_permission",
}


def experiment_id(url: str, name_or_id: str) -> str:
    """An experiment's id, given its id or its name."""
    if name_or_id.isdigit():
        return name_or_id
    found = MlflowClient(url).get_experiment_by_name(name_or_id)
    if found is None:
        raise MlflowException(f"no experiment named {name_or_id!r}")
    return str(found.experiment_id)


def main(url: str, request: dict[str, Any]) -> dict[str, Any]:
    call, args = request["call"], dict(request.get("args", {}))
    if call == "experiment_id":
        return {"ok": True, "result": experiment_id(url, args["name_or_id"])}
    if call not in CALLS:
        return {"ok": False, "status": 0, "error": f"unknown call {call!r}"}
    result = getattr(AuthServiceClient(url), call)(**args)
    if result is not None and hasattr(result, "to_json"):
        result = result.to_json()
    return {"ok": True, "result": result}


if __name__ == "__main__":
    try:
        answer = main(sys.argv[1], json.loads(sys.stdin.read()))
    except RestException as exc:
        answer = {"ok": False, "status": exc.get_http_status_code(), "error": exc.message}
    except MlflowException as exc:
        answer = {"ok": False, "status": exc.get_http_status_code(), "error": exc.message}
    print(json.dumps(answer, default=str))
