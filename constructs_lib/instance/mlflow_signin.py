"""``python -m mlflow_signin server ...``: ``mlflow server`` whose basic-auth app remembers each run's
experiment id and reads the signed-in user once per request; where MLflow's code is not what was
checked (``unpatched``), its app as shipped (docs/stacks/mlflow.md, "What sign-in costs")."""

import ast
import inspect
import logging
import os
import sys
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("mlflow_signin")
MEMO_LIMIT = 200_000
_experiment_of_run: dict[str, str] = {}
_USERS = "mlflow_signin_users"
# unpatched()'s answer, found once by `python -m mlflow_signin` (parsing MLflow's auth module takes
# about 0.5 s) and inherited by the server's workers: problems one per line, empty when none.
VERDICT = "MLFLOW_SIGNIN_UNPATCHED"


def _reads_only_experiment_id(source: str) -> bool:
    # Each X = _fetch_or_none(<store>.get_run, ...) is used only as X is None or X.info.experiment_id.
    found = False
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        names = {
            t.id
            for node in ast.walk(fn)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "_fetch_or_none"
            and getattr(node.value.args[0], "attr", None) == "get_run"
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        if not names:
            continue
        found = True
        parents = {c: p for p in ast.walk(fn) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(fn):
            if isinstance(node, ast.Name) and node.id in names and isinstance(node.ctx, ast.Load):
                up = parents[node]
                if isinstance(up, ast.Compare) and isinstance(up.ops[0], ast.Is):
                    continue
                if (
                    getattr(up, "attr", None) != "info"
                    or getattr(parents.get(up), "attr", None) != "experiment_id"
                ):
                    return False
    return found


def unpatched(auth: Any) -> list[str]:
    gone = [
        n for n in ("_fetch_or_none", "_authenticate_cached", "store", "create_app") if not hasattr(auth, n)
    ]
    if gone:
        return [f"mlflow.server.auth has no {', '.join(gone)}"]
    if not _reads_only_experiment_id(inspect.getsource(auth)):
        return ["a run fetched for authorization is read for more than its experiment id"]
    return []


def patch(auth: Any) -> None:
    from flask import g, has_request_context

    fetch_or_none, authenticate, store = auth._fetch_or_none, auth._authenticate_cached, auth.store
    get_user = store.get_user

    def fetch(fetcher: Any, resource_id: str) -> Any:
        if getattr(fetcher, "__name__", None) != "get_run":
            return fetch_or_none(fetcher, resource_id)
        experiment_id = _experiment_of_run.get(resource_id)
        if experiment_id is None:
            run = fetch_or_none(fetcher, resource_id)
            if run is None:
                return None
            experiment_id = run.info.experiment_id
            if len(_experiment_of_run) >= MEMO_LIMIT:
                _experiment_of_run.clear()
            _experiment_of_run[resource_id] = experiment_id
        return SimpleNamespace(info=SimpleNamespace(experiment_id=experiment_id))

    def signed_in(username: str, password: str) -> Any:
        user = authenticate(username, password)
        if user is not None and has_request_context():
            g.setdefault(_USERS, {})[username] = user
        return user

    def user(username: str) -> Any:
        if not has_request_context():
            return get_user(username)
        users = g.setdefault(_USERS, {})
        if username not in users:
            users[username] = get_user(username)
        return users[username]

    def forgetting(change: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if has_request_context():
                g.pop(_USERS, None)
            return change(*args, **kwargs)

        return call

    auth._fetch_or_none, auth._authenticate_cached, store.get_user = fetch, signed_in, user
    for name in ("create_user", "update_user", "delete_user"):
        setattr(store, name, forgetting(getattr(store, name)))


def create_app(app: Any = None) -> Any:
    from mlflow.server import auth

    verdict = os.environ.get(VERDICT)
    problems = unpatched(auth) if verdict is None else verdict.splitlines()
    if problems:
        log.warning("mlflow_signin: MLflow's sign-in runs as shipped: %s", "; ".join(problems))
    else:
        patch(auth)
    return auth.create_app() if app is None else auth.create_app(app)


def main(argv: list[str]) -> None:
    from mlflow import server
    from mlflow.cli import cli

    if "basic-auth" in argv:
        from mlflow.server import auth

        os.environ[VERDICT] = "\n".join(unpatched(auth))
    find_app = getattr(server, "_find_app", None)
    if find_app is None:
        log.warning("mlflow_signin: mlflow.server._find_app is gone; MLflow's sign-in runs as shipped")
    else:
        server._find_app = lambda name: "mlflow_signin:create_app" if name == "basic-auth" else find_app(name)
    cli(argv, prog_name="mlflow")


if __name__ == "__main__":
    main(sys.argv[1:])
