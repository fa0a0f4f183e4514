"""What users put into MLflow before an upgrade, and what is read back after it; runs in an MLflow
venv (the old release's to fill, either to read: only client calls both releases have).

    python upgrade_data.py fill URL  < {"admin": [name, password], "users": {name: password}, "experiment": E}
    python upgrade_data.py read URL  < the same, plus "ids" from fill

Prints one JSON object as its last line. ``read`` gives what must be identical before and after:
the data (as alice) and what each user may do (HTTP status of each probe).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any

ARTIFACTS_MIB = {"data/weights.bin": 3, "data/embeddings.bin": 5}
METRIC_STEPS = 50


def signed_in(name: str, password: str) -> None:
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = name, password


def fill(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    users = spec["users"]
    signed_in(*spec["admin"])
    auth = AuthServiceClient(url)
    for name, password in users.items():
        auth.create_user(name, password)
    signed_in("alice", users["alice"])
    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    experiment_id = client.create_experiment(spec["experiment"])
    model = f"{spec['experiment']}-model"
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({"lr": "0.01", "layers": "3"})
        mlflow.set_tag("team", "forecasting")
        for step in range(METRIC_STEPS):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        for path, mib in ARTIFACTS_MIB.items():
            local = os.path.join(tmp, os.path.basename(path))
            with open(local, "wb") as f:
                f.write(os.urandom(mib * 1024 * 1024))
            mlflow.log_artifact(local, artifact_path=os.path.dirname(path))
    client.create_registered_model(model)
    versions = [
        client.create_model_version(model, f"runs:/{run.info.run_id}/data", run.info.run_id).version
        for _ in range(2)
    ]
    client.set_registered_model_alias(model, "champion", versions[-1])
    signed_in(*spec["admin"])
    auth = AuthServiceClient(url)
    auth.create_experiment_permission(experiment_id, "bob", "READ")
    auth.create_registered_model_permission(model, "bob", "READ")
    auth.create_experiment_permission(experiment_id, "carol", "EDIT")
    # An explicit refusal: the grant MLflow 3.13's sign-in migration drops (the upgrade carries it over).
    auth.create_experiment_permission(experiment_id, "dave", "NO_PERMISSIONS")
    return {"experiment_id": experiment_id, "run_id": run.info.run_id, "model": model, "versions": versions}


def status(url: str, path: str, user: tuple[str, str] | None, body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    if user is not None:
        request.add_header(
            "Authorization", "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def read(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    from mlflow import MlflowClient

    users, ids = spec["users"], spec["ids"]
    signed_in("alice", users["alice"])
    client = MlflowClient(url)
    run = client.get_run(ids["run_id"])
    history = sorted((m.step, m.value) for m in client.get_metric_history(ids["run_id"], "loss"))
    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in ARTIFACTS_MIB:
            local = client.download_artifacts(ids["run_id"], path, tmp)
            with open(local, "rb") as f:
                digests[path] = hashlib.sha256(f.read()).hexdigest()
    model = ids["model"]
    data = {
        "experiment": client.get_experiment(ids["experiment_id"]).name,
        "params": run.data.params,
        "tags": {k: v for k, v in run.data.tags.items() if k == "team"},  # the probes below add one
        "loss": history,
        "artifacts_sha256": digests,
        "model_versions": sorted(v.version for v in client.search_model_versions(f"name='{model}'")),
        "champion": client.get_model_version_by_alias(model, "champion").version,
    }
    e, r = ids["experiment_id"], ids["run_id"]

    def as_(name: str) -> tuple[str, str]:
        return (name, users[name])

    tag = {"run_id": r, "key": "reviewed", "value": "yes"}
    probes = {
        "anonymous reads the experiment": status(url, f"/api/2.0/mlflow/experiments/get?experiment_id={e}", None),
        "admin reads the experiment": status(url, f"/api/2.0/mlflow/experiments/get?experiment_id={e}", tuple(spec["admin"])),
        "bob reads the experiment": status(url, f"/api/2.0/mlflow/experiments/get?experiment_id={e}", as_("bob")),
        "bob reads the model": status(url, f"/api/2.0/mlflow/registered-models/get?name={model}", as_("bob")),
        "bob tags the run": status(url, "/api/2.0/mlflow/runs/set-tag", as_("bob"), tag),
        "carol tags the run": status(url, "/api/2.0/mlflow/runs/set-tag", as_("carol"), tag),
        "carol reads the model": status(url, f"/api/2.0/mlflow/registered-models/get?name={model}", as_("carol")),
        "dave reads the experiment": status(url, f"/api/2.0/mlflow/experiments/get?experiment_id={e}", as_("dave")),
    }  # fmt: skip
    return {"data": data, "probes": probes}


if __name__ == "__main__":
    action, url = sys.argv[1], sys.argv[2]
    spec = json.loads(sys.stdin.read())
    print(json.dumps(fill(url, spec) if action == "fill" else read(url, spec), sort_keys=True))
