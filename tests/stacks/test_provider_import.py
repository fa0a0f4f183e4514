"""The lazy provider import (stacks/provider_import.py and, in the jsii kernel's node process,
stacks/jsii_lazy_index.js) changes nothing but the time: the same JSON, the same modules
reachable, node's objects resolved, a clear error (Python) or the eager index.js (node) if a
package changes, and no other process sees the node preload. The kernel start
(stacks/jsii_kernel.py) is tested in test_jsii_kernel.py."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from stacks import jsii_kernel, provider_import
from stacks.provider_import import IMPORT_BLOCK_MARKER, LazyRootLoader, ProviderShapeError
from tests.conftest import ROOT, Synthesized


def _run_python(args: list[str], *, lazy: bool, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter: the hook is process-global and acts only before the first import."""
    environment = {**os.environ, provider_import.DISABLE_VARIABLE: "1" if lazy else "0", **env}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def _files(outdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


def test_session_imports_providers_lazily() -> None:
    if os.environ.get(provider_import.DISABLE_VARIABLE) == "0":
        pytest.skip(f"{provider_import.DISABLE_VARIABLE}=0: this session imports the providers eagerly")
    for package in provider_import.PACKAGES:
        spec = importlib.import_module(package).__spec__
        assert spec is not None
        assert isinstance(spec.loader, LazyRootLoader)


def test_synthesis_is_byte_identical_without_the_hook(synth: Synthesized, tmp_path: Path) -> None:
    """``synth`` is this session's synthesis (lazy, see above); the other runs with eager imports."""
    eager_out = tmp_path / "cdktf.out"
    done = _run_python(["main.py"], lazy=False, CDKTF_OUTDIR=str(eager_out), MLOPS_QUIET="1")
    assert done.returncode == 0, done.stderr
    lazy, eager = _files(synth.outdir), _files(eager_out)
    assert sorted(lazy) == sorted(eager)
    assert "manifest.json" in lazy
    assert len([name for name in lazy if name.endswith("cdk.tf.json")]) == len(synth.stack_names())
    for name, content in lazy.items():
        assert content == eager[name], f"{name} differs with the lazy provider import"


def test_types_returned_by_node_resolve_from_submodules_never_imported() -> None:
    """Node creates a ``random_pet`` before Python imported its submodule: jsii must find the class
    through the registered submodule map (without it: ``ValueError: Unknown type``)."""
    code = textwrap.dedent(
        """
        import sys
        from stacks import jsii_kernel, provider_import
        assert provider_import.install()
        import cdktf
        import cdktf_cdktf_provider_random as random
        from jsii import _reference_map
        from jsii._kernel import _make_reference_for_native
        from jsii._kernel.types import CreateRequest
        from jsii._runtime import kernel

        assert "cdktf_cdktf_provider_random.pet" not in sys.modules
        stack = cdktf.TerraformStack(cdktf.App(), "s")
        ref = kernel.provider.create(
            CreateRequest(fqn="@cdktf/provider-random.pet.Pet", args=_make_reference_for_native(kernel, [stack, "p"]))
        )
        pet = _reference_map.resolve_reference(kernel, ref)
        assert type(pet).__module__ == "cdktf_cdktf_provider_random.pet", type(pet)
        assert pet.terraform_resource_type == "random_pet"

        namespace = {}
        exec("from cdktf_cdktf_provider_random import *", namespace)
        assert set(random.__all__) <= set(namespace)
        assert namespace["string_resource"] is random.string_resource is sys.modules[
            "cdktf_cdktf_provider_random.string_resource"
        ]
        """
    )
    done = _run_python(["-c", code], lazy=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("package", sorted(provider_import.PACKAGES))
def test_every_submodule_is_registered_under_its_jsii_name(package: str) -> None:
    """The registered FQN of each submodule is the one its classes declare (``jsii_type=``)."""
    root = importlib.import_module(package)
    assembly = importlib.import_module(f"{package}._jsii").__jsii_assembly__.name
    source = Path(root.__file__ or "").read_text(encoding="utf-8")
    _code, submodules = provider_import.strip_submodule_imports(package, source)
    package_dir = Path(root.__file__ or "").parent
    wrong = []
    for sub in submodules:
        with (package_dir / sub / "__init__.py").open(encoding="utf-8") as f:
            head = f.read(1 << 16)  # the first class is within the first 2 KB
        start = head.index('jsii_type="') + len('jsii_type="')
        declared_submodule = head[start : head.index('"', start)].rsplit(".", 1)[0]
        if declared_submodule != f"{assembly}.{provider_import.jsii_submodule_name(sub)}":
            wrong.append((sub, declared_submodule))
    assert wrong == []


PACKAGE_HEAD = '"""A provider root package."""\nimport jsii\n'


def test_package_without_the_import_block_is_refused() -> None:
    with pytest.raises(
        ProviderShapeError, match=r"^some_provider: the trailing submodule import block was not found"
    ):
        provider_import.strip_submodule_imports("some_provider", PACKAGE_HEAD + "from . import bucket\n")


def test_natively_lazy_package_runs_unchanged() -> None:
    """CDK Terrain's prebuilt providers load submodules on first access already (PEP 562)."""
    source = PACKAGE_HEAD + "def __getattr__(name):\n    raise AttributeError(name)\n"
    assert provider_import.strip_submodule_imports("some_provider", source) == (source, [])


def test_package_with_other_code_after_the_import_block_is_refused() -> None:
    source = PACKAGE_HEAD + IMPORT_BLOCK_MARKER + "from . import bucket\nbucket.setup()\n"
    with pytest.raises(ProviderShapeError, match=r"some_provider: unexpected line .*bucket\.setup\(\)"):
        provider_import.strip_submodule_imports("some_provider", source)


def test_package_without_all_is_refused(tmp_path: Path) -> None:
    package_dir = tmp_path / "some_provider"
    (package_dir / "bucket").mkdir(parents=True)
    (package_dir / "bucket" / "__init__.py").write_text("")
    init = package_dir / "__init__.py"
    init.write_text(PACKAGE_HEAD + IMPORT_BLOCK_MARKER + "from . import bucket\n")
    loader = LazyRootLoader("some_provider", str(init))
    spec = importlib.util.spec_from_file_location(
        "some_provider", init, loader=loader, submodule_search_locations=[str(package_dir)]
    )
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(
        ProviderShapeError, match=r"^some_provider: __all__ is missing.*MLOPS_LAZY_PROVIDERS=0"
    ):
        loader.exec_module(module)


# --- node: the jsii kernel loads lib/lazy-index.js ---------------------------------------------


def _run_node(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``node`` as the jsii kernel runs (``--preserve-symlinks``), with the preload."""
    environment = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
    return subprocess.run(
        ["node", "--preserve-symlinks", "--require", str(jsii_kernel.NODE_PRELOAD), "-e", script, *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


# What each export of a package entry file is: the path its submodule ``require`` names. The file
# runs with a stand-in ``require``, so neither cdktf nor any submodule is needed.
EXPORTS_OF = """
const fs = require("fs");
const [name, dir] = process.argv.slice(1);
function exportsOf(file) {
  const exports = {};
  new Function("exports", "require", fs.readFileSync(file, "utf8"))(exports, (p) => ({ path: p }));
  const names = Object.getOwnPropertyNames(exports).filter((n) => n !== "__esModule");
  return Object.fromEntries(names.map((n) => [n, exports[n].path]));
}
const entry = require.resolve(name, { paths: [dir] });
const index = require("path").join(dir, "node_modules", name, "lib", "index.js");
console.log(JSON.stringify({ entry, eager: exportsOf(index), lazy: exportsOf(entry) }));
"""


def _assembly_name(package: str) -> str:
    name: str = importlib.import_module(f"{package}._jsii").__jsii_assembly__.name
    return name


def _install_package_entry(package: str, node_modules: Path) -> str:
    """The package's package.json and entry files, as the kernel installs them; its npm name."""
    name = _assembly_name(package)
    (tarball,) = (Path(importlib.import_module(f"{package}._jsii").__file__ or "").parent).glob("*.tgz")
    wanted = {"package/package.json", "package/lib/index.js", "package/lib/lazy-index.js"}
    target = node_modules / name
    with tarfile.open(tarball) as archive:
        for member in archive:
            if member.name in wanted:
                destination = target / member.name.removeprefix("package/")
                destination.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                destination.write_bytes(source.read())
    return name


@pytest.mark.parametrize("package", sorted(provider_import.PACKAGES))
def test_kernel_loads_lazy_index_which_exports_exactly_what_index_exports(
    package: str, tmp_path: Path
) -> None:
    name = _install_package_entry(package, tmp_path / "node_modules")
    done = _run_node(EXPORTS_OF, name, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    result = json.loads(done.stdout)
    assert Path(result["entry"]) == tmp_path / "node_modules" / name / "lib" / "lazy-index.js"
    assert result["eager"], "index.js exports no submodule"
    assert result["lazy"] == result["eager"]


def test_preload_covers_every_lazily_imported_provider() -> None:
    done = _run_node(
        "console.log(JSON.stringify([...require(process.argv[1]).PACKAGES]))",
        str(jsii_kernel.NODE_PRELOAD),
    )
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)) == sorted(_assembly_name(p) for p in provider_import.PACKAGES)


INDEX_JS = """"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.provider = exports.pet = void 0;
exports.pet = require("./pet");
exports.provider = require("./provider");
"""


def _getter(name: str) -> str:
    return f"Object.defineProperty(exports, '{name}', {{ get: function () {{ return require('./{name}'); }} }});\n"


@pytest.mark.parametrize(
    ("lazy_index", "problem"),
    [
        ('"use strict";\n' + _getter("pet"), "export different submodules: provider"),
        (
            '"use strict";\n' + _getter("pet") + _getter("provider") + 'require("./setup");\n',
            "unexpected line",
        ),
        ('"use strict";\n' + _getter("pet") + _getter("provider").replace("./provider", "./pet"), "provider"),
        (None, "ENOENT"),
    ],
    ids=["missing-export", "extra-code", "other-module", "no-lazy-index"],
)
def test_kernel_falls_back_to_index_with_a_warning(
    lazy_index: str | None, problem: str, tmp_path: Path
) -> None:
    lib = tmp_path / "node_modules" / "@cdktf" / "provider-random" / "lib"
    lib.mkdir(parents=True)
    (lib.parent / "package.json").write_text('{"name": "@cdktf/provider-random", "main": "lib/index.js"}')
    (lib / "index.js").write_text(INDEX_JS)
    if lazy_index is not None:
        (lib / "lazy-index.js").write_text(lazy_index)
    done = _run_node(
        'console.log(require.resolve("@cdktf/provider-random", { paths: [process.argv[1]] }))', str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == lib / "index.js"
    assert done.stderr.startswith("warning: @cdktf/provider-random: loading index.js eagerly (")
    assert problem in done.stderr


KERNEL_ENVIRONMENT = """
import json, os, subprocess
from pathlib import Path
import stacks.app  # imports cdktf: starts the jsii kernel

def descendants(pid):
    children = [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    return children + [d for c in children for d in descendants(c)]

def node_options(pid):
    variables = Path(f"/proc/{pid}/environ").read_bytes().split(b"\\0")
    return next((v[13:].decode() for v in variables if v.startswith(b"NODE_OPTIONS=")), None)

kernel = [
    {"argv": Path(f"/proc/{p}/cmdline").read_bytes().decode().split("\\0")[:-1], "NODE_OPTIONS": node_options(p)}
    for p in descendants(os.getpid())
]
later = subprocess.run(["node", "-e", "console.log(process.env.NODE_OPTIONS)"], capture_output=True, text=True)
print(json.dumps({"kernel": kernel, "after": os.environ.get("NODE_OPTIONS"), "child": later.stdout.strip()}))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the kernel's command line in /proc")
@pytest.mark.parametrize("lazy", [True, False], ids=["lazy", "eager"])
def test_only_the_jsii_kernel_gets_the_node_preload(lazy: bool) -> None:
    """The kernel (node running jsii-runtime.js, and the program.js it starts) has the preload on
    its command line and the user's NODE_OPTIONS unchanged; Python's environment and every later
    child have only the user's."""
    done = _run_python(["-c", KERNEL_ENVIRONMENT], lazy=lazy, NODE_OPTIONS="--no-deprecation")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    scripts = [Path(k["argv"][-1]).name for k in result["kernel"]]
    assert scripts == ["jsii-runtime.js", "program.js"]
    preload = ["--require", str(jsii_kernel.NODE_PRELOAD)]
    for kernel in result["kernel"]:
        argv = kernel["argv"]
        has_preload = any(argv[i : i + 2] == preload for i in range(len(argv)))
        assert has_preload == lazy, argv
        assert kernel["NODE_OPTIONS"] == "--no-deprecation"
    assert result["after"] == "--no-deprecation"
    assert result["child"] == "--no-deprecation"


def test_process_started_after_synthesis_does_not_inherit_the_preload(synth: Synthesized) -> None:
    done = subprocess.run(
        ["node", "-e", "console.log(process.env.NODE_OPTIONS || '')"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--require" not in done.stdout
    assert str(jsii_kernel.NODE_PRELOAD) not in os.environ.get("NODE_OPTIONS", "")
