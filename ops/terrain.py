"""``ops terrain``: the tested way out of CDKTF (archived 2025-12-10) to CDK Terrain (``cdktn``).

``ops terrain port --dest DIR`` copies the project's files (``git ls-files``) to DIR and rewrites
them by rule, never by hand: Python modules, pinned packages, the CLI. It fails if a file still
names cdktf anywhere a rule does not explicitly keep it.

``ops terrain check`` (run by CI) builds ``.venv-terrain`` from requirements-terrain.txt and
constraints-terrain.txt, ports the project into a temporary directory, synthesizes every stack
there and here, requires byte-identical JSON once the provider ``source``/``version`` and the
framework version are normalized, then runs the variant's stack tests. The why and the how of the
move are in docs/decisions/cdk-terrain.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.bench import Case, Sample, measure
from ops.runner import CommandError, Result, execute

ROOT = Path(__file__).resolve().parent.parent
VENV = ".venv-terrain"
# Installed by `make test`, untracked, used by the stack tests as they are (see check()).
SHARED_INSTALLS = (".venv-tools", "tools/iam-simulate/node_modules")
REQUIREMENTS = "requirements-terrain.txt"
CONSTRAINTS = "constraints-terrain.txt"

# The npm side has no requirements file: its CLI pin and the Node.js it needs (its `engines`).
CLI_PACKAGE = "cdktn-cli"
CLI_VERSION = "0.24.0"
NODE_RANGE = ">=22.19.0"

# Copied unchanged: the port's own files describe the move away from cdktf, and the snapshots are
# expected output that the variant regenerates (reviewed) with --snapshot-update.
VERBATIM = (
    "ops/terrain.py",
    "tests/cli/test_terrain.py",
    "docs/decisions/cdk-terrain.md",
    REQUIREMENTS,
    CONSTRAINTS,
)
VERBATIM_DIR = "__snapshots__"
# The pip files of the app's .venv (the tools' venv, constraints-tools.txt, is not CDK-related).
APP_PIP_FILES = ("requirements.txt", "requirements-dev.txt", "constraints.txt")
LOCKFILE = "package-lock.json"


@dataclass(frozen=True)
class Kept:
    """A mention of cdktf that stays in the variant, and why."""

    pattern: str
    why: str


KEPT = (
    Kept(r"cdktf\.json", "CDK Terrain's CLI still reads cdktf.json"),
    Kept(r"cdktf\.out", "still the default output directory of cdktn and its CLI"),
    Kept(r"CDKTF_[A-Z0-9_]+", "cdktn and its CLI keep the CDKTF_* environment variables (CDKTF_OUTDIR...)"),
    Kept(
        r"""ManagedBy["']?\s*[:=]\s*["']cdktf["']""",
        "a tag value on every resource: renaming it is a tag update of its own, not part of the port",
    ),
    Kept(r"CDKTF 0\.21", "prose about the release being left (e.g. what CDKTF 0.21 lacked)"),
)

# One pass, leftmost match first; at one position a kept mention wins over a rename.
_TOKEN = re.compile(
    "(?P<kept>" + "|".join(k.pattern for k in KEPT) + ")"
    r"|(?P<module>cdktf_cdktf_provider)"  # Python provider modules: cdktn_provider_aws
    r"|(?P<dist>cdktf-cdktf-provider)"  # PyPI provider packages: cdktn-provider-aws
    r"|(?P<name>CDK for Terraform)"
    r"|(?P<word>(?i:cdktf))"  # the library, the CLI (cdktf-cli, npx cdktf) and our own names
)
_REPLACEMENT = {"module": "cdktn_provider", "dist": "cdktn-provider", "name": "CDK Terrain"}
_MENTION = re.compile("(?i:cdktf)")
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?==(?P<version>\S+)")


class TerrainError(Exception):
    """A port or check step failed; the message says what and where."""


def rename(text: str, counts: Counter[str] | None = None) -> str:
    """Apply the rename rules to one text; ``counts`` collects how often each rule fired."""

    def substitute(match: re.Match[str]) -> str:
        rule = match.lastgroup or ""
        if counts is not None:
            counts[rule] += 1
        found = match.group()
        if rule == "kept":
            return found
        if rule == "word":
            return "CDKTN" if found.isupper() else "Cdktn" if found[0].isupper() else "cdktn"
        return _REPLACEMENT[rule]

    return _TOKEN.sub(substitute, text)


def leftovers(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every mention of cdktf that no kept pattern covers."""
    kept_spans = [m.span() for m in _TOKEN.finditer(text) if m.lastgroup == "kept"]
    found: list[tuple[int, str]] = []
    for match in _MENTION.finditer(text):
        if any(start <= match.start() < end for start, end in kept_spans):
            continue
        line_no = text.count("\n", 0, match.start()) + 1
        found.append((line_no, text.splitlines()[line_no - 1].strip()))
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a pip requirements/constraints file, by canonical name."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[canonical(match["name"])] = match["version"]
    return pins


def repin(text: str, pins: Mapping[str, str], counts: Counter[str] | None = None) -> str:
    """Set every pinned package that CDK Terrain's venv also pins to that venv's version."""
    lines = []
    for line in text.splitlines(keepends=True):
        match = _PIN.match(line)
        version = pins.get(canonical(match["name"])) if match else None
        if match and version is not None and version != match["version"]:
            lines.append(f"{match['name']}{match['extras'] or ''}=={version}{line[match.end() :]}")
            if counts is not None:
                counts["pin"] += 1
        else:
            lines.append(line)
    return "".join(lines)


def repackage(text: str, counts: Counter[str] | None = None) -> str:
    """package.json: the renamed CLI at its pinned version, and the Node.js it requires."""
    doc = json.loads(text)
    changes = 0
    deps = doc.get("devDependencies", {})
    if CLI_PACKAGE in deps and deps[CLI_PACKAGE] != CLI_VERSION:
        deps[CLI_PACKAGE] = CLI_VERSION
        changes += 1
    if doc.get("engines", {}).get("node") not in (None, NODE_RANGE):
        doc["engines"]["node"] = NODE_RANGE
        changes += 1
    if counts is not None:
        counts["package.json"] += changes
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def changed_lines(old: str, new: str) -> int:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    return sum(a != b for a, b in zip(old_lines, new_lines, strict=False)) + abs(
        len(old_lines) - len(new_lines)
    )


def file_kind(rel: str) -> str:
    if rel in APP_PIP_FILES:
        return "pins"
    if rel in ("package.json", LOCKFILE):
        return "npm"
    return {".py": "python", ".md": "docs"}.get(Path(rel).suffix, "other")


@dataclass
class PortReport:
    dest: Path
    files: int = 0
    changed: dict[str, int] = field(default_factory=dict)  # path -> changed lines
    rules: Counter[str] = field(default_factory=Counter)
    verbatim: list[str] = field(default_factory=list)
    lockfile: str = ""

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind of file -> (files, lines) changed."""
        kinds: dict[str, tuple[int, int]] = {}
        for rel, lines in self.changed.items():
            kind = file_kind(rel)
            files, total = kinds.get(kind, (0, 0))
            kinds[kind] = (files + 1, total + lines)
        return kinds

    def summary(self) -> str:
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(self.rules.items()))
        kinds = "; ".join(f"{k} {f} files/{n} lines" for k, (f, n) in sorted(self.by_kind().items()))
        lines = [
            f"ported {self.files} files to {self.dest}: {sum(self.changed.values())} lines changed "
            f"in {len(self.changed)} files ({kinds})",
            f"rules applied: {rules}",
            f"copied unchanged: {len(self.verbatim)} files (the port's own files and the snapshots)",
            f"{LOCKFILE}: {self.lockfile}",
            "kept mentions of cdktf:",
            *(f"  {k.pattern}: {k.why}" for k in KEPT),
        ]
        return "\n".join(lines)


def tracked_files(root: Path) -> list[str]:
    """The files git tracks, as they are in the work tree (uncommitted edits included)."""
    proc = _run(["git", "ls-files", "-z"], cwd=root, env=os.environ)
    if not proc.ok:
        raise TerrainError(f"{root}: not a git checkout ({proc.stderr.strip()})")
    return [n for n in proc.stdout.split("\0") if n and ((root / n).is_file() or (root / n).is_symlink())]


def is_verbatim(rel: str) -> bool:
    return rel in VERBATIM or VERBATIM_DIR in Path(rel).parts


def port(root: Path, dest: Path, regenerate_lock: bool = True) -> PortReport:
    """Write the CDK Terrain variant of ``root`` to ``dest`` (which must not exist or be empty)."""
    if dest.exists() and any(dest.iterdir()):
        raise TerrainError(f"{dest}: exists and is not empty; give a new directory")
    pins = read_pins(root / CONSTRAINTS)
    report = PortReport(dest)
    for rel in tracked_files(root):
        source = root / rel
        target = dest / (rel if is_verbatim(rel) else rename(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        report.files += 1
        try:
            text = None if source.is_symlink() else source.read_text()
        except UnicodeDecodeError:
            text = None
        if text is None or is_verbatim(rel) or rel == LOCKFILE:
            shutil.copy2(source, target, follow_symlinks=False)
            if text is not None and is_verbatim(rel):
                report.verbatim.append(rel)
            continue
        new = rename(text, report.rules)
        if rel in APP_PIP_FILES:
            new = repin(new, pins, report.rules)
        if rel == "package.json":
            new = repackage(new, report.rules)
        target.write_text(new)
        shutil.copymode(source, target)
        if new != text:
            report.changed[rel] = changed_lines(text, new)
    report.lockfile = _relock(dest, regenerate_lock)
    _require_no_leftovers(dest)
    return report


def _relock(dest: Path, regenerate: bool) -> str:
    lock = dest / LOCKFILE
    if not lock.exists():
        return "none in the project"
    if not regenerate:
        lock.unlink()
        return "removed (--no-lock): run `npm install --package-lock-only` before `npm ci`"
    cmd = ["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"]
    proc = _run([*cmd, "--loglevel=error"], cwd=dest, env=os.environ)
    if proc.returncode != 0:
        raise TerrainError(f"{' '.join(cmd)} failed in {dest}:\n{_tail(proc.stderr + proc.stdout)}")
    return f"regenerated for {CLI_PACKAGE} {CLI_VERSION} (npm install --package-lock-only)"


def _require_no_leftovers(dest: Path) -> None:
    problems = []
    for path in sorted(p for p in dest.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(dest).as_posix()
        if is_verbatim(rel):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        problems += [f"{rel}:{n}: {line}" for n, line in leftovers(text)]
    if problems:
        raise TerrainError(
            "the port left mentions of cdktf that no rule keeps (add a rename or a kept pattern):\n  "
            + "\n  ".join(problems)
        )


# --- running things -----------------------------------------------------------------------


def _run(cmd: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Result:
    try:
        return execute(cmd, cwd=cwd, env=env)
    except FileNotFoundError as exc:
        raise TerrainError(f"{cmd[0]}: not found ({exc.strerror})") from exc


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _stamp(root: Path) -> str:
    digest = hashlib.sha256()
    for name in (REQUIREMENTS, CONSTRAINTS):
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def ensure_venv(root: Path, base_python: str = sys.executable) -> Path:
    """``.venv-terrain`` holding exactly the pinned CDK Terrain packages; rebuilt when the pins change."""
    venv = root / VENV
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == _stamp(root):
        return python
    print(f"installing CDK Terrain into {VENV} ...", flush=True)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    for cmd in (
        [base_python, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "-r", REQUIREMENTS, "-c", CONSTRAINTS],
    ):
        proc = _run(cmd, cwd=root, env=env)
        if proc.returncode != 0:
            raise TerrainError(f"{' '.join(cmd)} failed:\n{_tail(proc.stderr + proc.stdout)}")
    stamp.write_text(_stamp(root))
    return python


def timed(cmd: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Sample:
    """Run ``cmd`` to completion: wall time, and the peak memory of its python and node processes."""
    try:
        return measure(Case(" ".join(cmd), list(cmd), cwd, env))
    except CommandError as exc:
        raise TerrainError(f"(in {cwd}) {exc}") from exc


def app_env(**extra: str) -> dict[str, str]:
    """Both apps see the same environment: every environment and stack kind, no stray path."""
    env = dict(os.environ, MLOPS_QUIET="1", CHECKPOINT_DISABLE="1", **extra)
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    for name in ("MLOPS_ENVS", "MLOPS_STACKS", "PYTHONPATH", "CDKTF_OUTDIR"):
        if name not in extra:
            env.pop(name, None)
    return env


# --- comparing synthesized JSON -----------------------------------------------------------

NORMALIZED = "<normalized>"


def normalize(doc: Any) -> tuple[Any, list[tuple[str, str]]]:
    """The stack document with the fields a framework/provider move changes replaced by a marker,
    and those fields' (path, value) pairs: ``terraform.required_providers.*.source/version`` and
    the framework version in the ``//`` metadata (stacks) or at the top (manifest)."""
    fields: list[tuple[str, str]] = []

    def mark(holder: dict[str, Any], key: str, path: str) -> None:
        if key in holder:
            fields.append((path, str(holder[key])))
            holder[key] = NORMALIZED

    doc = json.loads(json.dumps(doc))
    if not isinstance(doc, dict):
        return doc, fields
    providers = doc.get("terraform", {}).get("required_providers", {})
    for name, spec in providers.items():
        for key in ("source", "version"):
            mark(spec, key, f"terraform.required_providers.{name}.{key}")
    metadata = doc.get("//", {}).get("metadata")
    if isinstance(metadata, dict):
        mark(metadata, "version", "//.metadata.version")
    if "stacks" in doc:  # manifest.json
        mark(doc, "version", "version")
    return doc, fields


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


@dataclass
class Comparison:
    files: int = 0
    identical_raw: int = 0
    # Identical once normalized, but laid out differently: cdktf 0.21 writes an empty {} or []
    # over two lines, cdktn on one. Same document, same canonical bytes.
    layout_only: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    only_one_side: list[str] = field(default_factory=list)
    # field path -> {(today, variant)}: what normalization hid, for the summary
    differences: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.only_one_side

    @property
    def normalized(self) -> int:
        """Files that differ as they are and are byte-identical once normalized."""
        return self.files - self.identical_raw - len(self.mismatched)

    def add(self, rel: str, old_text: str, new_text: str) -> None:
        """Compare one file: its canonical serialization (``json.dumps(indent=2)``, key order
        kept) must be byte-identical once :func:`normalize` has run on both sides."""
        self.files += 1
        if old_text == new_text:
            self.identical_raw += 1
            return
        old_doc, new_doc = json.loads(old_text), json.loads(new_text)
        old, old_fields = normalize(old_doc)
        new, new_fields = normalize(new_doc)
        if _dump(old) != _dump(new) or [p for p, _ in old_fields] != [p for p, _ in new_fields]:
            self.mismatched.append(rel)
            return
        for (path, before), (_, after) in zip(old_fields, new_fields, strict=True):
            if before != after:
                self.differences.setdefault(path, set()).add((before, after))
        if any(text.rstrip("\n") != _dump(doc) for text, doc in ((old_text, old_doc), (new_text, new_doc))):
            self.layout_only.append(rel)

    def summary(self, what: str) -> str:
        layout = (
            f" ({len(self.layout_only)} of them also laid out differently: an empty {{}} or [] "
            "on two lines in cdktf 0.21, on one in cdktn)"
            if self.layout_only
            else ""
        )
        lines = [
            f"{what}: {self.files} JSON files, {self.identical_raw} identical as they are, "
            f"{self.normalized} identical once normalized{layout}, {len(self.mismatched)} different"
        ]
        for path, pairs in sorted(self.differences.items()):
            values = "; ".join(f"{a} -> {b}" for a, b in sorted(pairs))
            lines.append(f"  normalized {path}: {values}")
        lines += [f"  DIFFERENT: {rel}" for rel in self.mismatched]
        lines += [f"  ONLY ON ONE SIDE: {rel}" for rel in self.only_one_side]
        return "\n".join(lines)


def _json_files(top: Path) -> dict[str, Path]:
    return {
        p.relative_to(top).as_posix(): p
        for p in top.rglob("*.json")
        if ".terraform" not in p.relative_to(top).parts
    }


def compare_trees(today: Path, variant: Path) -> Comparison:
    """Every JSON file under both trees, byte for byte once :func:`normalize` has run."""
    result = Comparison()
    old_files, new_files = _json_files(today), _json_files(variant)
    result.only_one_side = sorted(set(old_files) ^ set(new_files))
    for rel in sorted(set(old_files) & set(new_files)):
        result.add(rel, old_files[rel].read_text(), new_files[rel].read_text())
    return result


# --- the variant's tests ------------------------------------------------------------------

# The layered layout first; the flat one (tests/test_*stack*.py) until the move lands.
STACK_TEST_DIRS = ("tests/stacks", "tests/constructs")
STACK_TEST_GLOBS = ("tests/test_*stack*.py", "tests/test_constructs*.py")


def stack_test_paths(variant: Path) -> list[str]:
    dirs = [d for d in STACK_TEST_DIRS if (variant / d).is_dir()]
    if dirs:
        return dirs
    return sorted(p.relative_to(variant).as_posix() for g in STACK_TEST_GLOBS for p in variant.glob(g))


# Variant test failures that are understood, by test id prefix, with the reason. The check fails on
# any other failure.
EXPECTED_VARIANT_FAILURES = {
    "tests.stacks.test_provider_import::test_kernel_loads_lazy_index_which_exports_exactly_what_index_exports": (
        "cdktn's lib/index.js has another shape than the prebuilt cdktf providers' (TypeScript's "
        "__importStar helpers), so stacks/jsii_lazy_index.js falls back to the eager index.js, as "
        "designed: correct JSON, but node keeps its full memory until the preload learns that shape"
    ),
}


def expected_failure(test_id: str) -> str | None:
    return next(
        (why for prefix, why in EXPECTED_VARIANT_FAILURES.items() if test_id.startswith(prefix)), None
    )


@dataclass
class TestRun:
    passed: int
    failed: list[str]
    skipped: int
    snapshots: Comparison
    seconds: float

    @property
    def ok(self) -> bool:
        return all(expected_failure(name) for name in self.failed) and self.snapshots.ok


def _snapshots(top: Path) -> dict[str, Path]:
    return {p.relative_to(top).as_posix(): p for p in top.rglob("*.json") if VERBATIM_DIR in p.parts}


def run_stack_tests(python: Path, root: Path, variant: Path, paths: Sequence[str]) -> TestRun:
    """The variant's stack tests with ``--snapshot-update``, then every rewritten snapshot compared
    with ours under the same normalization: a snapshot may differ only in the normalized fields."""
    report = variant / ".terrain-tests.xml"
    cmd = [str(python), "-m", "pytest", *paths, "-m", "not state", "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    proc = _run([*cmd, "--snapshot-update", f"--junitxml={report}"], cwd=variant, env=app_env())
    seconds = time.perf_counter() - start
    if not report.exists():
        raise TerrainError(
            f"{' '.join(cmd)} (in {variant}) ran no tests:\n{_tail(proc.stdout + proc.stderr)}"
        )
    passed, skipped, failed = 0, 0, []
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome = {child.tag for child in case}
        name = f"{case.get('classname')}::{case.get('name')}"
        if outcome & {"failure", "error"}:
            failed.append(name)
        elif "skipped" in outcome:
            skipped += 1
        else:
            passed += 1
    if proc.returncode != 0 and not failed:
        raise TerrainError(f"{' '.join(cmd)} (in {variant}) failed:\n{_tail(proc.stdout + proc.stderr)}")
    snapshots = Comparison()
    ours, theirs = _snapshots(root), _snapshots(variant)
    snapshots.only_one_side = sorted(set(ours) ^ set(theirs))
    for rel in sorted(set(ours) & set(theirs)):
        snapshots.add(rel, ours[rel].read_text(), theirs[rel].read_text())
    return TestRun(passed, failed, skipped, snapshots, seconds)


# --- the check ----------------------------------------------------------------------------


@dataclass
class Timing:
    today: list[Sample] = field(default_factory=list)
    variant: list[Sample] = field(default_factory=list)

    def summary(self) -> str:
        def med(runs: list[Sample], attr: str) -> float:
            return statistics.median(float(getattr(r, attr)) for r in runs)

        t, v = self.today, self.variant
        ratio = med(v, "seconds") / med(t, "seconds")
        return (
            f"synth time, median of {len(t)} fresh processes: today {med(t, 'seconds'):.1f} s, "
            f"variant {med(v, 'seconds'):.1f} s ({ratio:.2f}x)\n"
            f"peak memory, median: today python {med(t, 'python_mib'):.0f} MiB + node "
            f"{med(t, 'node_mib'):.0f} MiB; variant python {med(v, 'python_mib'):.0f} MiB + node "
            f"{med(v, 'node_mib'):.0f} MiB"
        )


def check(
    root: Path, runs: int, regenerate_lock: bool, tests: Sequence[str] | None, keep: Path | None
) -> int:
    python = ensure_venv(root)
    with tempfile.TemporaryDirectory(prefix="terrain-") as scratch:
        work = keep or Path(scratch)
        variant = work / "variant"
        report = port(root, variant, regenerate_lock)
        # Neither depends on CDKTF, so the variant uses the same installs: checkov (the policy
        # tests) and the IAM policy simulator (tests/stacks/test_ci_trust.py).
        for rel in SHARED_INSTALLS:
            if (root / rel).is_dir():
                (variant / rel).symlink_to((root / rel).resolve(), target_is_directory=True)
        print(report.summary(), flush=True)
        timing = Timing()
        # Interleaved, so drift on a busy machine hits both sides alike; run 0 is the one compared.
        for i in range(runs):
            timing.today.append(
                timed([sys.executable, "main.py"], root, app_env(CDKTF_OUTDIR=str(work / f"today-{i}")))
            )
            timing.variant.append(
                timed([str(python), "main.py"], variant, app_env(CDKTF_OUTDIR=str(work / f"variant-{i}")))
            )
        comparison = compare_trees(work / "today-0", work / "variant-0")
        paths = list(tests) if tests else stack_test_paths(variant)
        if not paths:
            raise TerrainError(f"{variant}: no stack tests found ({', '.join(STACK_TEST_DIRS)})")
        result = run_stack_tests(python, root, variant, paths)
    print(comparison.summary("synthesized stacks (cdktf.out)"))
    print(
        f"variant stack tests ({' '.join(paths)}): {result.passed} passed, {len(result.failed)} failed, "
        f"{result.skipped} skipped in {result.seconds:.0f} s"
    )
    for name in result.failed:
        why = expected_failure(name)
        print(f"  FAILED: {name}" + (f"\n    expected in the variant: {why}" if why else ""))
    if not result.failed:
        print("  (no failures)")
    print(result.snapshots.summary("snapshots rewritten by --snapshot-update"))
    rewritten = result.snapshots.files - result.snapshots.identical_raw
    print(
        f"  -> as they are, {rewritten} snapshot tests fail on the variant, "
        f"{result.snapshots.normalized} of them only in the normalized fields"
    )
    print(timing.summary())
    ok = comparison.ok and result.ok
    print(f"terrain check: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "terrain",
        help="the CDK Terrain variant of the project: port it, or check it against today's synthesis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="terrain_command", required=True, metavar="<port|check>")
    port_parser = commands.add_parser("port", help="write the CDK Terrain variant to a new directory")
    port_parser.add_argument("--dest", type=Path, required=True, help="new (or empty) directory")
    check_parser = commands.add_parser(
        "check", help="port, synthesize both, compare, run the variant's tests"
    )
    check_parser.add_argument("--runs", type=int, default=3, help="synth runs per side for the timing")
    check_parser.add_argument(
        "--tests", nargs="+", help="test paths of the variant (default: its stack tests)"
    )
    check_parser.add_argument("--keep", type=Path, help="work in this new directory and keep it")
    for sub in (port_parser, check_parser):
        sub.add_argument(
            "--no-lock",
            dest="regenerate_lock",
            action="store_false",
            help=f"drop {LOCKFILE} instead of regenerating it with npm",
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = Path(getattr(args, "root", ROOT)).resolve()
    try:
        if args.terrain_command == "port":
            print(port(root, args.dest.resolve(), args.regenerate_lock).summary())
            return 0
        if args.runs < 1:
            print("error: --runs: must be at least 1", file=sys.stderr)
            return 2
        keep = args.keep.resolve() if args.keep else None
        if keep is not None and keep.exists() and any(keep.iterdir()):
            print(f"error: --keep: {keep} exists and is not empty", file=sys.stderr)
            return 2
        return check(root, args.runs, args.regenerate_lock, args.tests, keep)
    except TerrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
