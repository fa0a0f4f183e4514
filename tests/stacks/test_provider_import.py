"""The lazy provider import (stacks/provider_import.py) changes nothing but the time: the same
JSON, the same modules reachable, node's objects resolved, and a clear error if a package changes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stacks import provider_import
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
        from stacks import provider_import
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
