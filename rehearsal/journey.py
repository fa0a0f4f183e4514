"""What a user does with the MLflow Python client; run with the rehearsal venv's Python.

    python journey.py TRACKING_URI EXPERIMENT ARTIFACT_MIB

Prints one JSON object (the ids and what was read back) as its last line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

# Runs in the rehearsal venv: mlflow is not a dependency of the project venv that mypy checks.
import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient


class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return [2 * x for x in model_input]


def main(uri: str, experiment: str, artifact_mib: int) -> dict[str, Any]:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = mlflow.create_experiment(experiment)
    model_name = f"{experiment}-model"
    with (
        tempfile.TemporaryDirectory() as tmp,
        mlflow.start_run(experiment_id=experiment_id, run_name="rehearsal-run") as run,
    ):
        mlflow.log_params({"alpha": "0.5", "layers": "3"})
        mlflow.set_tag("scratch", "to be deleted")
        client.delete_tag(run.info.run_id, "scratch")
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        blob = os.path.join(tmp, "weights.bin")
        with open(blob, "wb") as f:
            f.write(os.urandom(artifact_mib * 1024 * 1024))
        mlflow.log_artifact(blob, artifact_path="data")
        mlflow.pyfunc.log_model(
            name="model", python_model=Doubler(), registered_model_name=model_name, pip_requirements=[]
        )
    loaded = mlflow.pyfunc.load_model(f"models:/{model_name}/1")
    back = client.get_run(run.info.run_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run.info.run_id, "data/weights.bin", tmp)
        size = os.path.getsize(path)
    return {
        "experiment_id": experiment_id,
        "experiment_name": experiment,
        "model_name": model_name,
        "run_id": run.info.run_id,
        "run_name": back.info.run_name,
        "params": back.data.params,
        "tags": sorted(k for k in back.data.tags if not k.startswith("mlflow.")),
        "metrics": back.data.metrics,
        "artifact_bytes": size,
        "model_versions": [v.version for v in client.search_model_versions(f"name='{model_name}'")],
        "prediction": list(loaded.predict([1, 2, 3])),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
