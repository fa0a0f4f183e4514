"""``python -m mlflow_signin server ...``: ``mlflow server`` whose basic-auth app remembers each run's
experiment id, reads the signed-in user once per request and lets its gate allow a request on the
user's grants as read up to ``GRANT_CACHE`` seconds ago (a refusal is decided on fresh grants);
where MLflow's code is not what was checked (``unpatched``), its app as shipped
(docs/stacks/mlflow.md, "What sign-in costs")."""

import ast
import inspect
import logging
import os
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

log = logging.getLogger("mlflow_signin")
MEMO_LIMIT = 200_000
_experiment_of_run: dict[str, str] = {}
_USERS = "mlflow_signin_users"
# unpatched()'s answer, found once by `python -m mlflow_signin` (parsing MLflow's auth module takes
# about 0.5 s) and inherited by the server's workers: problems one per line, empty when none.
VERDICT = "MLFLOW_SIGNIN_UNPATCHED"
# Seconds a worker's gate may allow on grants it read before (launch.py sets it; 0: never).
GRANT_CACHE = "MLFLOW_SIGNIN_GRANT_CACHE_SECONDS"
_GATE, _STALE = "mlflow_signin_gate", "mlflow_signin_stale"
# Store methods that only read; any other one may change grants and empties this worker's cache.
READS = ("get_", "list_", "has_", "is_", "user_has_", "authenticate_user", "init_db")


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
    names = ("_fetch_or_none", "_authenticate_cached", "_before_request", "store", "create_app")
    gone = [n for n in names if not hasattr(auth, n)]
    if not hasattr(getattr(auth, "store", None), "list_grants"):
        gone.append("store.list_grants")
    if gone:
        return [f"mlflow.server.auth has no {', '.join(gone)}"]
    if not _reads_only_experiment_id(inspect.getsource(auth)):
        return ["a run fetched for authorization is read for more than its experiment id"]
    if "before_request(_before_request)" not in inspect.getsource(auth.create_app):
        return ["create_app does not register _before_request by its name"]
    return []


def patch(auth: Any) -> None:
    from flask import g, has_request_context

    fetch_or_none, authenticate, store = auth._fetch_or_none, auth._authenticate_cached, auth.store
    get_user, list_grants, gate = store.get_user, store.list_grants, auth._before_request
    seconds = float(os.environ.get(GRANT_CACHE) or 0)
    grants: dict[Any, tuple[float, list[Any]]] = {}
    lock, changes = threading.Lock(), [0]

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

    def grants_of(user_id: Any, workspace: Any, resource_types: Any) -> Any:
        key = (user_id, workspace, frozenset(resource_types))
        if has_request_context() and g.get(_GATE):
            with lock:
                kept = grants.get(key)
            if kept is not None and kept[0] > time.monotonic():
                setattr(g, _STALE, True)
                return list(kept[1])
        before = changes[0]
        rows = list_grants(user_id, workspace, resource_types)
        if seconds > 0:
            with lock:
                if changes[0] != before:  # read while a change was written: not kept
                    return rows
                if len(grants) >= MEMO_LIMIT:
                    grants.clear()
                grants[key] = (time.monotonic() + seconds, list(rows))
        return rows

    def gated() -> Any:
        g.pop(_STALE, None)
        setattr(g, _GATE, seconds > 0)
        try:
            response = gate()
        finally:
            g.pop(_GATE, None)
        if getattr(response, "status_code", None) == 403 and g.pop(_STALE, False):
            response = gate()
        return response

    def forget() -> None:
        if has_request_context():
            g.pop(_USERS, None)
        with lock:
            grants.clear()
            changes[0] += 1

    def forgetting(change: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return change(*args, **kwargs)
            finally:
                forget()

        return call

    auth._fetch_or_none, auth._authenticate_cached, auth._before_request = fetch, signed_in, gated
    store.get_user, store.list_grants = user, grants_of
    for name in dir(type(store)):
        if not name.startswith(("_", *READS)) and callable(getattr(store, name)):
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
