"""``ops run-job``: the job id from ``terraform output -json``, then Jobs API 2.1 run-now and
polling against a fake Databricks API on 127.0.0.1 (no network, no Databricks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from ops import cli, run_job
from tests.cli.support import fake_outdir, repo_copy, write_tool

JOB_ID = 4242
RUN_ID = 7

FAKE_TERRAFORM = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"stack": os.path.basename(os.getcwd()), "args": args}) + "\n")
if args[0] == "output":
    print(os.environ["FAKE_OUTPUTS"])
"""


@dataclass
class FakeJobs:
    """What the fake API answers: ``states`` in turn for each runs/get (the last one repeats)."""

    states: list[dict[str, str]]
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    reads: int = 0


@pytest.fixture
def api() -> Iterator[tuple[str, FakeJobs]]:
    jobs = FakeJobs(states=[])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def answer(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            jobs.calls.append(("POST", self.path, body))
            jobs.tokens.add(self.headers.get("Authorization", ""))
            if self.path == "/api/2.1/jobs/run-now":
                if body.get("job_id") != JOB_ID:
                    self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such job"})
                else:
                    self.answer(200, {"run_id": RUN_ID, "number_in_job": RUN_ID})
            elif self.path == "/api/2.1/jobs/runs/cancel":
                self.answer(200, {})
            else:
                self.answer(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            jobs.calls.append(("GET", url.path, parse_qs(url.query)))
            jobs.tokens.add(self.headers.get("Authorization", ""))
            if url.path != "/api/2.1/jobs/runs/get" or parse_qs(url.query).get("run_id") != [str(RUN_ID)]:
                self.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": self.path})
                return
            state = jobs.states[min(jobs.reads, len(jobs.states) - 1)]
            jobs.reads += 1
            self.answer(
                200,
                {
                    "run_id": RUN_ID,
                    "run_page_url": f"https://example/#job/{JOB_ID}/run/{RUN_ID}",
                    "state": state,
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the loop's next poll: 0.5 s by default, after every test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", jobs
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = repo_copy(tmp_path / "repo")
    fake_outdir(repo, env="dev", kinds=("databricks",))
    tool = write_tool(tmp_path / "bin", "terraform", FAKE_TERRAFORM)
    monkeypatch.setenv("TERRAFORM_BINARY_NAME", str(tool))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv(
        "FAKE_OUTPUTS",
        json.dumps(
            {
                "model_training_job_id": {"sensitive": False, "type": "string", "value": str(JOB_ID)},
                "batch_inference_job_id": {"sensitive": False, "type": "string", "value": "1"},
            }
        ),
    )
    monkeypatch.setenv("DATABRICKS_TOKEN", "test-token")
    return repo


def run_cli(root: Path, url: str, *extra: str) -> int:
    return cli.main(
        [
            "--root",
            str(root),
            "run-job",
            "--env",
            "dev",
            "--job",
            "model_training_job",
            "--poll-interval",
            "0.02",
            "--api-url",
            url,
            *extra,
        ]
    )


def terminated(result: str, message: str = "") -> dict[str, str]:
    return {"life_cycle_state": "TERMINATED", "result_state": result, "state_message": message}


RUNNING = {"life_cycle_state": "RUNNING", "state_message": "In run"}


def test_a_successful_run_exits_0(
    root: Path, api: tuple[str, FakeJobs], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, jobs = api
    jobs.states = [{"life_cycle_state": "PENDING"}, RUNNING, RUNNING, terminated("SUCCESS")]
    assert run_cli(root, url) == 0
    assert jobs.calls[0] == ("POST", "/api/2.1/jobs/run-now", {"job_id": JOB_ID})
    assert [c[1] for c in jobs.calls[1:]] == ["/api/2.1/jobs/runs/get"] * 4
    assert jobs.tokens == {"Bearer test-token"}
    out = capsys.readouterr().out
    assert f"started run {RUN_ID} of job {JOB_ID}" in out and "succeeded" in out
    # The id came from the stack directory's outputs, after an init.
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [c["args"][0] for c in calls] == ["init", "output"]
    assert {c["stack"] for c in calls} == {"databricks-dev"}
    assert "-json" in calls[1]["args"]


def test_a_failed_run_exits_1_with_its_state_message(
    root: Path, api: tuple[str, FakeJobs], capsys: pytest.CaptureFixture[str]
) -> None:
    url, jobs = api
    jobs.states = [RUNNING, terminated("FAILED", "Task train failed with message: ValueError: bad table")]
    assert run_cli(root, url) == 1
    err = capsys.readouterr().err
    assert "TERMINATED/FAILED" in err
    assert "Task train failed with message: ValueError: bad table" in err
    assert not any(c[1].endswith("/cancel") for c in jobs.calls)


def test_an_internal_error_is_a_failure(root: Path, api: tuple[str, FakeJobs]) -> None:
    url, jobs = api
    jobs.states = [{"life_cycle_state": "INTERNAL_ERROR", "state_message": "cluster lost"}]
    assert run_cli(root, url) == 1


def test_a_run_that_outlives_the_timeout_is_cancelled_and_fails(
    root: Path, api: tuple[str, FakeJobs], capsys: pytest.CaptureFixture[str]
) -> None:
    url, jobs = api
    jobs.states = [RUNNING]
    assert run_cli(root, url, "--timeout", "0.3s") == 1
    err = capsys.readouterr().err
    assert "did not finish within" in err and "cancelled it" in err
    assert jobs.calls[-1] == ("POST", "/api/2.1/jobs/runs/cancel", {"run_id": RUN_ID})
    # Bounded: about timeout / poll interval reads, not an endless loop.
    assert 2 <= jobs.reads <= 30


def test_a_missing_token_exits_2_naming_what_to_set(
    root: Path, api: tuple[str, FakeJobs], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, jobs = api
    monkeypatch.delenv("DATABRICKS_TOKEN")
    assert run_cli(root, url) == 2
    err = capsys.readouterr().err
    assert "DATABRICKS_TOKEN is not set" in err and "docs/runbooks/ci-cd.md" in err
    assert jobs.calls == []


def test_an_unknown_job_names_the_jobs_the_stack_outputs(
    root: Path, api: tuple[str, FakeJobs], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = api
    code = cli.main(["--root", str(root), "run-job", "--env", "dev", "--job", "nope", "--api-url", url])
    assert code == 2
    assert "batch_inference_job, model_training_job" in capsys.readouterr().err


def test_an_api_error_is_reported(
    root: Path, api: tuple[str, FakeJobs], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = api
    monkeypatch.setenv("FAKE_OUTPUTS", json.dumps({"model_training_job_id": {"value": "99"}}))
    assert run_cli(root, url) == 1
    assert "HTTP 404 RESOURCE_DOES_NOT_EXIST: no such job" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"), [("2h", 7200), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("5", 5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert run_job.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "2d", "h", "-1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(Exception, match="duration"):
        run_job.parse_duration(text)
