"""The jsii kernel's node process: the node preload on its command line, started as early as the
process likes.

jsii starts its kernel, ``node --max-old-space-size=4069 <jsii-runtime.js>`` (which runs
``lib/program.js`` in a child node), when the first jsii assembly loads, i.e. at the first
``import cdktf``, and loads the constructs and cdktf assemblies next: about 0.25 s in which Python
only waits for node. ``install()`` replaces jsii's ``_NodeProcess.start`` with ``_adopt``, which
takes the process ``start()`` launched earlier, or launches one then. Either way it is jsii's own
command plus ``--require stacks/jsii_lazy_index.js``: node hands its options down to the child it
starts, so both get the preload, and no environment variable carries it to any other process.

``start()`` is what ``python -m ops synth`` calls first (ops/__main__.py): it launches the kernel
and writes the load requests of constructs and cdktf at once, so node boots and loads them on the
other core while Python imports and validates the configuration. ``_adopt`` then reads the hello
and the two answers before jsii sends anything; jsii's own load requests for the same assemblies
find them loaded. A process that never needs the kernel (a configuration error) stops it at exit.

``_adopt`` does what jsii 1.142.0's ``_NodeProcess.start`` does after ``Popen`` (stderr sink
thread, stop at exit, handshake); ``install()`` refuses a jsii whose start sequence has another
shape (``KernelShapeError``) instead of guessing. ``MLOPS_LAZY_PROVIDERS=0`` (stacks/provider_import.py)
leaves jsii's start alone.
"""

from __future__ import annotations

import atexit
import importlib.resources
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_PRELOAD = Path(__file__).with_name("jsii_lazy_index.js")
# What jsii's own start passes to node before the runtime script.
JSII_NODE_ARGS = ("--max-old-space-size=4069",)
# Loaded first by every synthesis (cdktf depends on constructs), in dependency order.
EARLY_ASSEMBLIES = ("constructs", "cdktf")
# What the adoption uses of jsii's process module: it replaces ``start`` and calls the others.
_JSII_MEMBERS = (
    "_NodeProcess.start",
    "_NodeProcess.handshake",
    "_NodeProcess.stop",
    "_NodeProcess._next_message",
    "stderr_sink",
)


class KernelShapeError(ImportError):
    """jsii's kernel start no longer looks the way the adoption expects."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"jsii: {problem}; stacks/jsii_kernel.py cannot start the jsii kernel safely. Was jsii "
            "upgraded? Set MLOPS_LAZY_PROVIDERS=0 to let jsii start it (providers load eagerly)."
        )


@dataclass
class _Launched:
    process: subprocess.Popen[bytes]
    runtime_dir: tempfile.TemporaryDirectory[str] | None  # jsii's runtime files, unless JSII_RUNTIME
    early_loads: tuple[str, ...]  # assemblies whose load answers are still to be read


_launched: list[_Launched] = []  # the process start() launched, until jsii adopts it


def start() -> None:
    """Launch the kernel now, unless this process already has one (idempotent)."""
    if _launched or kernel_started():
        return
    install()
    _launched.append(_launch(EARLY_ASSEMBLIES))
    atexit.register(_stop_unadopted)


def install() -> None:
    """Make jsii start its kernel through ``_adopt`` (idempotent); before the first assembly loads."""
    from jsii._kernel.providers import process

    if process._NodeProcess.start is _adopt:
        return
    absent = missing(process)
    if absent:
        raise KernelShapeError(f"jsii._kernel.providers.process has no {', '.join(absent)}")
    process._NodeProcess.start = _adopt  # type: ignore[method-assign]


def missing(process_module: Any) -> list[str]:
    """The members of jsii's process module that the adoption needs and ``process_module`` lacks."""
    return [name for name in _JSII_MEMBERS if not _has(process_module, name)]


def _command(runtime: str, environ: dict[str, str]) -> list[str]:
    """jsii's kernel command line, with the node preload."""
    return [environ.get("JSII_NODE", "node"), *JSII_NODE_ARGS, "--require", str(NODE_PRELOAD), runtime]


def _has(module: Any, dotted: str) -> bool:
    target = module
    for part in dotted.split("."):
        target = getattr(target, part, None)
    return callable(target)


def kernel_started() -> bool:
    """Whether jsii started its kernel: each generated package's ``<package>._jsii`` module loads
    its assembly, which starts it."""
    return any(name.endswith("._jsii") for name in sys.modules)


def _launch(early: tuple[str, ...]) -> _Launched:
    environ = os.environ.copy()
    environ["JSII_AGENT"] = f"Python/{platform.python_version()}"
    runtime_dir = None
    runtime = environ.get("JSII_RUNTIME")
    if runtime is None:
        runtime_dir = tempfile.TemporaryDirectory()
        runtime = _unpack_runtime(Path(runtime_dir.name))
    process = subprocess.Popen(
        _command(runtime, environ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )
    loads = [request for request in map(_load_request, early) if request is not None]
    assert process.stdin is not None
    for request in loads:
        process.stdin.write(json.dumps(request).encode() + b"\n")
    process.stdin.flush()
    return _Launched(process, runtime_dir, tuple(str(r["name"]) for r in loads))


def _unpack_runtime(directory: Path) -> str:
    """jsii's embedded runtime files under ``directory``, as jsii lays them out; the entry point."""
    from jsii._embedded import jsii as embedded

    for resource, name in embedded.EMBEDDED_FILES.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(importlib.resources.files(embedded).joinpath(resource).read_bytes())
    return str(directory / embedded.EMBEDDED_FILES[embedded.ENTRYPOINT])


def _load_request(package: str) -> dict[str, str] | None:
    """The load request jsii sends for ``package`` (its ``_jsii/<name>@<version>.jsii.tgz``), found
    without importing it; None if it is not installed so."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    tarballs = [p for d in spec.submodule_search_locations for p in Path(d, "_jsii").glob("*@*.jsii.tgz")]
    if len(tarballs) != 1:
        return None
    name, _, version = tarballs[0].name.removesuffix(".jsii.tgz").rpartition("@")
    return {"api": "load", "name": name, "version": version, "tarball": str(tarballs[0])}


def _adopt(node_process: Any) -> None:
    """``_NodeProcess.start``: the launched process (or a new one) becomes jsii's kernel."""
    from jsii._kernel.providers import process

    launched = _launched.pop() if _launched else _launch(())
    node_process._process = launched.process
    if launched.runtime_dir is not None:
        node_process._ctx_stack.enter_context(launched.runtime_dir)  # removed by stop()
    node_process.sink_thread = threading.Thread(
        name="process.stderr_sink", target=process.stderr_sink, args=(launched.process.stderr,), daemon=True
    )
    node_process.sink_thread.start()
    atexit.register(node_process.stop)
    node_process.handshake()
    for name in launched.early_loads:
        answer = node_process._next_message()
        if "ok" not in answer:
            raise RuntimeError(
                f"jsii kernel: loading the {name} assembly failed: {answer.get('error', answer)}"
            )


def _stop_unadopted() -> None:
    """At exit: the kernel start() launched was never needed. The end of its input stops it as
    jsii's own stop does; a signal could leave the program.js child behind, unreaped."""
    if not _launched:
        return
    launched = _launched.pop()
    assert launched.process.stdin is not None
    launched.process.stdin.close()
    try:
        launched.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        launched.process.kill()
        launched.process.wait()
    for stream in (launched.process.stdout, launched.process.stderr):
        if stream is not None:
            stream.close()
    if launched.runtime_dir is not None:
        launched.runtime_dir.cleanup()
