"""The jsii kernel start (stacks/jsii_kernel.py): launched early, it is the kernel jsii uses, with
constructs and cdktf already loaded; unused, it is stopped at exit; a jsii of another shape is
refused; and the synthesis it serves is byte-identical."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from stacks import jsii_kernel, provider_import
from tests.conftest import ROOT, Synthesized

PROC = Path("/proc/self/task")
needs_proc = pytest.mark.skipif(not PROC.is_dir(), reason="finds the kernel's processes in /proc")

DESCENDANTS = """
import os
from pathlib import Path

def descendants(pid):
    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return children + [d for c in children for d in descendants(c)]
"""


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter: the kernel is started once per process."""
    environment = {k: v for k, v in os.environ.items() if k != provider_import.DISABLE_VARIABLE}
    return subprocess.run(
        [sys.executable, "-c", DESCENDANTS + textwrap.dedent(code)],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_proc
def test_the_early_kernel_is_the_one_jsii_uses_with_cdktf_already_loaded() -> None:
    done = _run_python(
        """
        import json, sys
        from stacks import jsii_kernel, provider_import
        provider_import.start_kernel()
        early = descendants(os.getpid())
        loads = jsii_kernel._launched[0].early_loads
        assert "cdktf" not in sys.modules
        import cdktf
        from jsii._runtime import kernel
        assert not cdktf.Token.is_unresolved("plain")  # a call into node: the kernel answers
        print(json.dumps({
            "early": early, "now": descendants(os.getpid()), "loads": loads,
            "adopted": kernel.provider._process._process.pid,
        }))
        """
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    [launched] = result["early"]  # jsii-runtime.js; it starts program.js once node has booted
    assert len(result["now"]) == 2, "jsii started no kernel of its own"
    assert result["now"][0] == result["adopted"] == launched
    assert result["loads"] == list(jsii_kernel.EARLY_ASSEMBLIES)


@needs_proc
def test_an_early_kernel_that_is_never_used_is_stopped_at_exit() -> None:
    done = _run_python(
        """
        import time
        from stacks import provider_import
        provider_import.start_kernel()
        deadline = time.monotonic() + 30
        while len(descendants(os.getpid())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        print(descendants(os.getpid()))
        """
    )
    assert done.returncode == 0, done.stderr
    pids = json.loads(done.stdout)
    assert len(pids) == 2, "jsii-runtime.js and the program.js it starts"
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_no_early_kernel_with_the_lazy_import_disabled() -> None:
    done = _run_python(
        """
        from stacks import jsii_kernel, provider_import
        provider_import.start_kernel()
        print(len(jsii_kernel._launched))
        """,
        **{provider_import.DISABLE_VARIABLE: "0"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


@pytest.mark.parametrize("package", jsii_kernel.EARLY_ASSEMBLIES)
def test_the_early_load_request_is_the_one_jsii_sends(package: str) -> None:
    module = importlib.import_module(f"{package}._jsii")
    assembly = module.__jsii_assembly__
    assert jsii_kernel._load_request(package) == {
        "api": "load",
        "name": assembly.name,
        "version": assembly.version,
        "tarball": str(Path(module.__file__ or "").parent / assembly.filename),
    }


def test_a_package_that_is_not_installed_gets_no_early_load() -> None:
    assert jsii_kernel._load_request("no_such_jsii_package") is None


def test_this_jsii_has_what_the_adoption_uses() -> None:
    from jsii._kernel.providers import process

    assert jsii_kernel.missing(process) == []


def test_a_jsii_of_another_shape_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from jsii._kernel.providers import process

    class NodeProcess:
        def start(self) -> None: ...

    stand_in = types.SimpleNamespace(_NodeProcess=NodeProcess, stderr_sink=process.stderr_sink)
    assert jsii_kernel.missing(stand_in) == [
        "_NodeProcess.handshake",
        "_NodeProcess.stop",
        "_NodeProcess._next_message",
    ]
    monkeypatch.setattr(process, "_NodeProcess", NodeProcess)
    with pytest.raises(
        jsii_kernel.KernelShapeError,
        match=r"^jsii: jsii\._kernel\.providers\.process has no _NodeProcess\.handshake, .*MLOPS_LAZY_PROVIDERS=0",
    ):
        jsii_kernel.install()


def test_ops_synth_with_the_early_kernel_writes_the_same_json(synth: Synthesized, tmp_path: Path) -> None:
    """``python -m ops synth`` starts the kernel early (ops/__main__.py); its Databricks stacks are
    byte-identical with this session's."""
    out = tmp_path / "cdktf.out"
    done = subprocess.run(
        [sys.executable, "-m", "ops", "synth", "--stack", "databricks", "--quiet", "--outdir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stacks = sorted(p.name for p in (out / "stacks").iterdir())
    assert stacks == sorted(n for n in synth.stack_names() if n.startswith("databricks-"))
    for name in stacks:
        ours = (out / "stacks" / name / "cdk.tf.json").read_bytes()
        assert ours == (synth.stack_dir(name) / "cdk.tf.json").read_bytes(), name
