"""constructs_lib/instance/mlflow_signin.py against a stand-in of mlflow.server.auth (the real one,
MLflow 3.17.2, is loaded by the rehearsal: its throughput step and every sign-in step run through it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import flask
import pytest

PATH = Path(__file__).resolve().parents[2] / "constructs_lib" / "instance" / "mlflow_signin.py"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlflow_signin_under_test", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAFE = """
def _run_requirement(run_id, action):
    run = _fetch_or_none(_get_tracking_store().get_run, run_id)
    if run is None:
        return None
    return run.info.experiment_id, action
"""


class FakeAuth(ModuleType):
    """What mlflow_signin relies on in mlflow.server.auth, counting the store's reads."""

    def __init__(self, source: str = SAFE) -> None:
        super().__init__("fake_auth")
        self.source = source
        self.calls: list[tuple[str, str]] = []
        self.runs = {"r1": "e1", "r2": "e2"}
        outer = self

        # The grants in the database, which other workers change without this one knowing.
        self.grants: dict[int, list[tuple[str, str, str]]] = {}
        self.app_source = "def create_app(app):\n    app.before_request(_before_request)\n"
        self.during_read: Any = None

        class Store:
            def get_user(self, username: str) -> Any:
                outer.calls.append(("get_user", username))
                return SimpleNamespace(username=username, is_admin=False)

            def update_user(self, username: str, **kwargs: Any) -> None:
                outer.calls.append(("update_user", username))

            create_user = delete_user = update_user

            def list_grants(self, user_id: int, workspace: str, resource_types: Any) -> list[Any]:
                outer.calls.append(("list_grants", str(user_id)))
                rows = list(outer.grants.get(user_id, []))
                if outer.during_read is not None:
                    outer.during_read()
                return rows

            def get_experiment_permission(self, experiment_id: str, username: str) -> None:
                outer.calls.append(("get_experiment_permission", username))

            def grant_user_permission(self, username: str, kind: str, key: str, permission: str) -> None:
                outer.calls.append(("grant_user_permission", username))
                outer.grants.setdefault(1, []).append((kind, key, permission))

        self.store = Store()

    def _before_request(self) -> Any:
        """MLflow's gate, reduced: bob (user 1) may read experiment e1 with a READ grant on it."""
        if ("experiment", "e1", "READ") in self.store.list_grants(1, "default", {"experiment"}):
            return None
        return flask.Response("forbidden", status=403)

    def get_run(self, run_id: str) -> Any:
        self.calls.append(("get_run", run_id))
        if run_id not in self.runs:
            raise LookupError(run_id)
        return SimpleNamespace(info=SimpleNamespace(experiment_id=self.runs[run_id]))

    def get_experiment(self, experiment_id: str) -> str:
        self.calls.append(("get_experiment", experiment_id))
        return experiment_id

    def _fetch_or_none(self, fetch: Any, resource_id: str) -> Any:
        try:
            return fetch(resource_id)
        except LookupError:
            return None

    def _authenticate_cached(self, username: str, password: str) -> Any:
        return SimpleNamespace(username=username, is_admin=False) if password == "right" else None

    def create_app(self, app: Any = None) -> str:
        return "the app"


@pytest.fixture
def signin(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_module()
    monkeypatch.setattr(
        module.inspect,
        "getsource",
        lambda obj: obj.source if isinstance(obj, FakeAuth) else obj.__self__.app_source,
    )
    return module


def test_a_run_is_read_once_for_its_experiment(signin: ModuleType) -> None:
    auth = FakeAuth()
    assert signin.unpatched(auth) == []
    signin.patch(auth)
    for _ in range(3):
        assert auth._fetch_or_none(auth.get_run, "r1").info.experiment_id == "e1"
    assert auth._fetch_or_none(auth.get_run, "r2").info.experiment_id == "e2"
    assert auth.calls == [("get_run", "r1"), ("get_run", "r2")]
    # A missing run stays missing (and is asked again: it may be created later under that id).
    assert auth._fetch_or_none(auth.get_run, "gone") is None
    assert auth._fetch_or_none(auth.get_run, "gone") is None
    assert auth.calls.count(("get_run", "gone")) == 2
    # Other lookups are not remembered.
    auth._fetch_or_none(auth.get_experiment, "e1")
    auth._fetch_or_none(auth.get_experiment, "e1")
    assert auth.calls.count(("get_experiment", "e1")) == 2


def test_the_memo_is_bounded(signin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = FakeAuth()
    auth.runs = {f"r{i}": "e" for i in range(5)}
    monkeypatch.setattr(signin, "MEMO_LIMIT", 3)
    signin.patch(auth)
    for i in range(5):
        auth._fetch_or_none(auth.get_run, f"r{i}")
    assert len(signin._experiment_of_run) <= 3


def test_the_user_is_read_once_per_request_and_again_after_a_change(signin: ModuleType) -> None:
    auth = FakeAuth()
    signin.patch(auth)
    app = flask.Flask("t")
    with app.test_request_context("/"):
        auth.store.get_user("bob")
        auth.store.get_user("bob")
        assert auth.calls == [("get_user", "bob")]
        auth.store.update_user("bob", is_admin=True)
        auth.store.get_user("bob")
        assert auth.calls == [("get_user", "bob"), ("update_user", "bob"), ("get_user", "bob")]
    with app.test_request_context("/"):
        auth.store.get_user("bob")  # a new request reads again
    assert auth.calls.count(("get_user", "bob")) == 3
    # Outside a request (the launcher, the job consumers): nothing is kept.
    auth.store.get_user("bob")
    auth.store.get_user("bob")
    assert auth.calls.count(("get_user", "bob")) == 5


def test_the_signed_in_user_is_the_requests_user(signin: ModuleType) -> None:
    auth = FakeAuth()
    signin.patch(auth)
    with flask.Flask("t").test_request_context("/"):
        assert auth._authenticate_cached("alice", "wrong") is None
        assert auth._authenticate_cached("alice", "right").username == "alice"
        assert auth.store.get_user("alice").username == "alice"
    assert ("get_user", "alice") not in auth.calls


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (SAFE.replace("run.info.experiment_id", "run.data.tags"), "read for more than its experiment id"),
        (SAFE.replace("return run.info.experiment_id, action", "return run, action"), "more than"),
        ("def other():\n    return 1\n", "more than"),
    ],
)
def test_other_code_runs_mlflow_as_shipped(
    signin: ModuleType, source: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = FakeAuth(source)
    assert any(problem in p for p in signin.unpatched(auth))
    fetch = auth._fetch_or_none
    monkey = {"mlflow": ModuleType("mlflow"), "mlflow.server": ModuleType("mlflow.server")}
    monkey["mlflow.server"].auth = auth  # type: ignore[attr-defined]
    monkey["mlflow"].server = monkey["mlflow.server"]  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        for name, module in monkey.items():
            mp.setitem(sys.modules, name, module)
        mp.setitem(sys.modules, "mlflow.server.auth", auth)
        assert signin.create_app() == "the app"
    assert auth._fetch_or_none == fetch  # untouched
    assert "runs as shipped" in caplog.text


def test_a_missing_function_is_named(signin: ModuleType) -> None:
    auth = ModuleType("older_auth")
    auth._fetch_or_none = auth.create_app = auth._before_request = object()  # type: ignore[attr-defined]
    auth.store = SimpleNamespace()  # type: ignore[attr-defined]
    assert signin.unpatched(auth) == ["mlflow.server.auth has no _authenticate_cached, store.list_grants"]


def test_a_gate_registered_otherwise_is_named(signin: ModuleType) -> None:
    # The gate is replaced by name before create_app registers it: registered any other way, the
    # replacement would never run.
    auth = FakeAuth()
    auth.app_source = "def create_app(app):\n    app.before_request(lambda: _before_request())\n"
    assert signin.unpatched(auth) == ["create_app does not register _before_request by its name"]


# --- the gate's grants ------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gate(signin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeAuth, Clock, Any]:
    clock = Clock()
    monkeypatch.setattr(signin.time, "monotonic", clock)
    monkeypatch.setenv(signin.GRANT_CACHE, "10")
    auth = FakeAuth()
    signin.patch(auth)
    auth.grants[1] = [("experiment", "e1", "READ")]  # bob may read e1
    app = flask.Flask("t")

    def request() -> int:
        with app.test_request_context("/"):
            response = auth._before_request()
            return 200 if response is None else int(response.status_code)

    return auth, clock, request


def reads(auth: FakeAuth) -> int:
    return auth.calls.count(("list_grants", "1"))


def test_the_gate_allows_on_grants_read_within_the_cache_and_refuses_only_on_fresh_ones(
    gate: tuple[FakeAuth, Clock, Any],
) -> None:
    auth, clock, request = gate
    assert (request(), request(), reads(auth)) == (200, 200, 1)
    # Revoked through another worker: this one still allows for the cache's 10 s, no longer.
    auth.grants[1] = []
    clock.now += 9.9
    assert (request(), reads(auth)) == (200, 1)
    clock.now += 0.2
    assert (request(), reads(auth)) == (403, 2)
    # A refusal decided on fresh grants is not asked again.
    assert (request(), reads(auth)) == (403, 3)
    # Granted through another worker while this one holds the refusing grants: allowed at once
    # (the refusal came from grants read before, so the gate asks again with fresh ones).
    auth.grants[1] = [("experiment", "e1", "READ")]
    assert (request(), reads(auth)) == (200, 4)
    assert (request(), reads(auth)) == (200, 4)


def test_a_change_through_this_worker_empties_its_cache(gate: tuple[FakeAuth, Clock, Any]) -> None:
    auth, _clock, request = gate
    assert (request(), reads(auth)) == (200, 1)
    auth.store.grant_user_permission("bob", "experiment", "e2", "EDIT")
    assert (request(), reads(auth)) == (200, 2)
    auth.store.update_user("bob", is_admin=False)
    assert (request(), reads(auth)) == (200, 3)
    # Reads do not: the gate's grants stay cached across them.
    auth.store.get_experiment_permission("e1", "bob")
    assert (request(), reads(auth)) == (200, 3)


def test_every_store_method_but_the_reads_empties_the_cache(signin: ModuleType) -> None:
    auth = FakeAuth()
    methods = {n: getattr(auth.store, n) for n in dir(type(auth.store)) if not n.startswith("_")}
    signin.patch(auth)
    changed = {n for n, method in methods.items() if getattr(auth.store, n) != method}
    assert changed == {
        "create_user",
        "update_user",
        "delete_user",
        "grant_user_permission",
        "get_user",
        "list_grants",
    }


def test_grants_read_while_a_change_is_written_are_not_kept(gate: tuple[FakeAuth, Clock, Any]) -> None:
    auth, _clock, request = gate
    # Another thread of this worker writes a change while the gate's read is under way: what the
    # read returned may predate the change, so it decides this request and is not kept.
    auth.during_read = lambda: auth.store.update_user("alice")
    assert (request(), reads(auth)) == (200, 1)
    auth.during_read = None
    assert (request(), reads(auth)) == (200, 2)
    assert (request(), reads(auth)) == (200, 2)


def test_outside_the_gate_grants_are_read_fresh(gate: tuple[FakeAuth, Clock, Any]) -> None:
    auth, _clock, request = gate
    assert (request(), reads(auth)) == (200, 1)
    # The response filters (after the gate) and code outside a request read the database.
    with flask.Flask("t").test_request_context("/"):
        auth.store.list_grants(1, "default", {"experiment"})
    auth.store.list_grants(1, "default", {"experiment"})
    assert reads(auth) == 3


def test_without_a_cache_time_every_gate_reads_fresh(
    signin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(signin.GRANT_CACHE, raising=False)
    auth = FakeAuth()
    signin.patch(auth)
    auth.grants[1] = [("experiment", "e1", "READ")]
    for _ in range(3):
        with flask.Flask("t").test_request_context("/"):
            assert auth._before_request() is None
    assert reads(auth) == 3


def test_mlflow_server_runs_with_this_app_for_basic_auth(
    signin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[list[str]] = []
    server = ModuleType("mlflow.server")
    server._find_app = lambda name: f"upstream:{name}"  # type: ignore[attr-defined]
    cli = ModuleType("mlflow.cli")
    cli.cli = lambda argv, prog_name: called.append(argv)  # type: ignore[attr-defined]
    auth = FakeAuth(SAFE.replace("run.info.experiment_id", "run.data.tags"))
    server.auth = auth  # type: ignore[attr-defined]
    mlflow = ModuleType("mlflow")
    mlflow.server = server  # type: ignore[attr-defined]
    for name, module in {"mlflow": mlflow, "mlflow.server": server, "mlflow.cli": cli}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "mlflow.server.auth", auth)
    monkeypatch.delenv(signin.VERDICT, raising=False)
    signin.main(["server", "--app-name", "basic-auth"])
    assert called == [["server", "--app-name", "basic-auth"]]
    assert server._find_app("basic-auth") == "mlflow_signin:create_app"
    assert server._find_app("other") == "upstream:other"
    # The check ran once, here; the server's workers inherit its answer.
    import os

    assert (
        os.environ[signin.VERDICT]
        == "a run fetched for authorization is read for more than its experiment id"
    )


def test_workers_take_the_servers_verdict(signin: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[object] = []

    def unpatched(auth: object) -> list[str]:
        checked.append(auth)
        return ["not asked"]

    monkeypatch.setattr(signin, "unpatched", unpatched)
    for verdict, patched in (("", True), ("mlflow.server.auth has no store", False)):
        auth = FakeAuth()
        fetch = auth._fetch_or_none
        monkeypatch.setitem(sys.modules, "mlflow.server.auth", auth)
        monkeypatch.setenv(signin.VERDICT, verdict)
        server = ModuleType("mlflow.server")
        server.auth = auth  # type: ignore[attr-defined]
        mlflow = ModuleType("mlflow")
        mlflow.server = server  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "mlflow", mlflow)
        monkeypatch.setitem(sys.modules, "mlflow.server", server)
        assert signin.create_app() == "the app"
        assert (auth._fetch_or_none != fetch) is patched
    assert checked == []
