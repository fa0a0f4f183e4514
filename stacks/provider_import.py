"""Import the prebuilt provider packages without importing every one of their submodules.

Each provider root package ends with ``from . import <submodule>`` for every resource and data
source (about 2,200 for AWS): evaluating their class bodies is about half of a full synthesis,
although a stack uses a few dozen. The meta-path finder below loads the three root packages
without that trailing block; a module ``__getattr__`` imports ``<package>.<submodule>`` on first
access, so ``package.sub``, ``from package import sub`` and ``from package import *`` still work.

The block's stated purpose is registering every type with the jsii runtime, which needs the
Python class of any object node returns. jsii resolves a type it has not seen by importing the
module its submodule FQN maps to (``jsii._reference_map._submodule_fqn_map``, filled from the
``_SUBMODULE_FQN_MAP`` newer code generators emit); these packages predate that map, so the
loader fills it. The FQN of a submodule is the camelCase of its Python name (``s3_bucket`` is
``@cdktf/provider-aws.s3Bucket``); tests/stacks/test_provider_import.py checks that for every
submodule and that the synthesized JSON is byte-identical with and without this hook.

Any package that does not have the expected shape fails the import with ``ProviderShapeError``
naming the package and what changed, rather than synthesizing something different.

Node has the same problem: the jsii kernel ``require``s each provider package's ``lib/index.js``,
which requires every resource module (1.4 s and ~500 MiB for AWS). ``stacks/jsii_lazy_index.js``
makes the kernel load the package's ``lib/lazy-index.js`` instead (same exports, as getters; it
checks that and falls back to index.js with a warning). ``stacks/jsii_kernel.py`` puts it on the
kernel's command line only; the finder below installs that kernel start when the first
``<package>._jsii`` module, which starts the kernel, is imported.

``MLOPS_LAZY_PROVIDERS=0`` disables both halves (the byte-identity test runs a synthesis that way),
and the early kernel start. Importing the ``stacks`` package installs them, before any stack
module imports cdktf.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from stacks import jsii_kernel

PACKAGES = frozenset(
    {"cdktf_cdktf_provider_aws", "cdktf_cdktf_provider_databricks", "cdktf_cdktf_provider_random"}
)
DISABLE_VARIABLE = "MLOPS_LAZY_PROVIDERS"

# The comment jsii-pacmak writes above the submodule imports; everything after it must be imports.
IMPORT_BLOCK_MARKER = "# Loading modules to ensure their types are registered with the jsii runtime library\n"
_IMPORT_LINE = re.compile(r"from \. import ([A-Za-z_][A-Za-z0-9_]*)")
# A root package that already loads its submodules on first access (PEP 562), as CDK Terrain's
# prebuilt providers do: the hook leaves it as it is.
_NATIVELY_LAZY = re.compile(r"^def __getattr__\(", re.MULTILINE)


class ProviderShapeError(ImportError):
    """A provider package no longer looks the way the lazy import hook expects."""

    def __init__(self, package: str, problem: str) -> None:
        super().__init__(
            f"{package}: {problem}; the lazy provider import (stacks/provider_import.py) cannot load it "
            f"safely. Was the provider package upgraded? Set {DISABLE_VARIABLE}=0 to import it eagerly.",
            name=package,
        )


def strip_submodule_imports(package: str, source: str) -> tuple[str, list[str]]:
    """Split a root package's source into the code to run and the submodules it would import
    (none for a natively lazy package, which runs unchanged)."""
    head, marker, block = source.partition(IMPORT_BLOCK_MARKER)
    if not marker:
        if _NATIVELY_LAZY.search(source):
            return source, []
        raise ProviderShapeError(package, "the trailing submodule import block was not found")
    submodules: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        match = _IMPORT_LINE.fullmatch(line)
        if match is None:
            raise ProviderShapeError(package, f"unexpected line after the submodule imports: {line!r}")
        submodules.append(match.group(1))
    if not submodules:
        raise ProviderShapeError(package, "the submodule import block is empty")
    return head, submodules


def jsii_submodule_name(python_name: str) -> str:
    """The jsii submodule name jsii-pacmak snake-cased into ``python_name``."""
    first, *rest = python_name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _make_lazy(module: ModuleType, submodules: Sequence[str]) -> None:
    """``module`` has just run; ``publication.publish()`` may have replaced it in ``sys.modules``
    with a facade holding only ``__all__``, which is what importers get and what needs the hook."""
    package = module.__name__
    names = frozenset(submodules)
    exported = module.__dict__.get("__all__")
    if not isinstance(exported, list):
        raise ProviderShapeError(package, "__all__ is missing")
    if set(exported) != names:
        raise ProviderShapeError(package, "__all__ is not exactly the list of imported submodules")
    shadowed = sorted(names & module.__dict__.keys())
    if shadowed:
        # The eager import would have replaced these globals with the submodules.
        raise ProviderShapeError(package, f"submodules shadowed by module globals: {', '.join(shadowed)}")

    def __getattr__(name: str) -> Any:  # noqa: N807 (PEP 562 module hook)
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    public = sys.modules[package]
    public.__getattr__ = __getattr__  # type: ignore[method-assign]
    _register_submodule_fqns(package, names)


def _register_submodule_fqns(package: str, submodules: frozenset[str]) -> None:
    from jsii import _reference_map

    fqn_map = getattr(_reference_map, "_submodule_fqn_map", None)
    if fqn_map is None:
        raise ProviderShapeError(
            package, "this jsii runtime cannot resolve types of lazily imported submodules"
        )
    assembly = getattr(sys.modules.get(f"{package}._jsii"), "__jsii_assembly__", None)
    if assembly is None:
        raise ProviderShapeError(package, f"{package}._jsii did not load a jsii assembly")
    fqn_map.update({f"{assembly.name}.{jsii_submodule_name(sub)}": f"{package}.{sub}" for sub in submodules})


class LazyRootLoader(importlib.machinery.SourceFileLoader):
    """Runs the root package without its import block. It compiles from source every time and
    never writes a ``.pyc``: the cached bytecode of the unmodified package stays valid."""

    def exec_module(self, module: ModuleType) -> None:
        source = importlib.util.decode_source(self.get_data(self.path))
        code, submodules = strip_submodule_imports(module.__name__, source)
        exec(compile(code, self.path, "exec", dont_inherit=True), module.__dict__)
        if submodules:
            _make_lazy(module, submodules)


class _KernelStartLoader(importlib.machinery.SourceFileLoader):
    """Loads the first ``<package>._jsii`` module (it loads a jsii assembly, which starts the
    kernel) once jsii starts its kernel through ``stacks/jsii_kernel.py``."""

    def exec_module(self, module: ModuleType) -> None:
        jsii_kernel.install()
        super().exec_module(module)


class _LazyRootFinder(importlib.abc.MetaPathFinder):
    def __init__(self, kernel_started: bool) -> None:
        self.kernel_started = kernel_started

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.endswith("._jsii") and not self.kernel_started:
            return self._kernel_start_spec(fullname, path)
        if fullname not in PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None:
            return None
        if not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or spec.origin is None:
            raise ProviderShapeError(fullname, f"not a source package (loader {spec.loader!r})")
        spec.loader = LazyRootLoader(fullname, spec.origin)
        return spec

    def _kernel_start_spec(
        self, fullname: str, path: Sequence[str] | None
    ) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader or not spec.origin:
            return spec  # not a generated jsii package: loaded as it is, the kernel unaffected
        # Set now: the _jsii modules of its dependencies are imported while this one runs.
        self.kernel_started = True
        spec.loader = _KernelStartLoader(fullname, spec.origin)
        return spec


def install() -> bool:
    """Install the hook (idempotent) unless ``MLOPS_LAZY_PROVIDERS=0``; returns whether it is active.

    It must run before the first import of a provider package: a package already imported
    stays as it was loaded, and a jsii kernel already running keeps loading index.js.
    """
    if os.environ.get(DISABLE_VARIABLE) == "0":
        return False
    if not any(isinstance(finder, _LazyRootFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _LazyRootFinder(jsii_kernel.kernel_started()))
    return True


def start_kernel() -> None:
    """Install the hook and launch the jsii kernel now (``stacks/jsii_kernel.py``), for a process
    that is about to read the configuration and synthesize; nothing with ``MLOPS_LAZY_PROVIDERS=0``."""
    if install():
        jsii_kernel.start()
