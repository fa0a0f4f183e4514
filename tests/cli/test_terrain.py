"""``ops terrain``: the rename rules (fast, always run) and the whole check (marker ``terrain``).

The check installs .venv-terrain (~1 min, ~700 MB) and synthesizes both variants, so it runs only
when selected explicitly: ``pytest -m terrain tests/cli/test_terrain.py``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ops import iam_policies, policy, terrain
from tests.conftest import ROOT


def parse(*argv: str) -> argparse.Namespace:
    top = argparse.ArgumentParser()
    terrain.add_parser(top.add_subparsers(dest="command", required=True))
    return top.parse_args(["terrain", *argv])


# --- rename rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("from cdktf import App, TerraformStack", "from cdktn import App, TerraformStack"),
        ("import cdktf\nx = cdktf.Fn.join", "import cdktn\nx = cdktn.Fn.join"),
        (
            "from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket",
            "from cdktn_provider_aws.s3_bucket import S3Bucket",
        ),
        ('m.startswith("cdktf_cdktf_provider")', 'm.startswith("cdktn_provider")'),
        ("cdktf-cdktf-provider-random==12.0.1", "cdktn-provider-random==12.0.1"),
        ('"devDependencies": {"cdktf-cli": "0.21.0"}', '"devDependencies": {"cdktn-cli": "0.21.0"}'),
        ('local = bin_dir / "cdktf"', 'local = bin_dir / "cdktn"'),
        ("npx cdktf deploy mlflow-dev", "npx cdktn deploy mlflow-dev"),
        ("from cdktf import Testing as CdktfTesting", "from cdktn import Testing as CdktnTesting"),
        ('os.environ.get("MLOPS_CDKTF")', 'os.environ.get("MLOPS_CDKTN")'),
        ("authored with CDK for Terraform (CDKTF)", "authored with CDK Terrain (CDKTN)"),
    ],
)
def test_rename_rewrites_modules_packages_and_the_cli(before: str, after: str) -> None:
    assert terrain.rename(before) == after


@pytest.mark.parametrize(
    "text",
    [
        'outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))',
        '"app": ".venv/bin/python main.py" in cdktf.json',
        "rm -rf cdktf.out .cdktf.out.new-*",
        '{"ManagedBy": "cdktf", "Project": "mlops"}',
        "# CDKTF 0.21's S3Backend predates S3-native locking",
    ],
)
def test_rename_keeps_what_cdk_terrain_still_uses_and_the_tag_value(text: str) -> None:
    counts: Counter[str] = Counter()
    assert terrain.rename(text, counts) == text
    assert set(counts) == {"kept"}
    assert terrain.leftovers(text) == []


def test_leftovers_names_each_unkept_mention_by_line() -> None:
    text = 'dir = "cdktf.out"\nfrom cdktf import App\n# the CDKTF CLI\n'
    assert terrain.leftovers(text) == [(2, "from cdktf import App"), (3, "# the CDKTF CLI")]
    assert terrain.leftovers(terrain.rename(text)) == []


def test_repin_takes_versions_from_the_terrain_pins_and_keeps_the_rest() -> None:
    text = "# runtime\ncdktn==0.21.0\nmoto[server]==5.2.5  # tests\nPyYAML==6.0.3\n"
    pins = {"cdktn": "0.24.0", "moto": "5.2.6", "pyyaml": "6.0.3"}
    counts: Counter[str] = Counter()
    assert terrain.repin(text, pins, counts) == (
        "# runtime\ncdktn==0.24.0\nmoto[server]==5.2.6  # tests\nPyYAML==6.0.3\n"
    )
    assert counts == Counter(pin=2)


def test_repackage_pins_the_cli_and_the_node_it_needs() -> None:
    text = json.dumps({"engines": {"node": ">=20"}, "devDependencies": {"cdktn-cli": "0.21.0"}}, indent=2)
    doc = json.loads(terrain.repackage(text))
    assert doc == {
        "engines": {"node": terrain.NODE_RANGE},
        "devDependencies": {terrain.CLI_PACKAGE: terrain.CLI_VERSION},
    }


def test_the_terrain_pins_are_the_ones_the_port_writes() -> None:
    requirements = terrain.read_pins(ROOT / terrain.REQUIREMENTS)
    constraints = terrain.read_pins(ROOT / terrain.CONSTRAINTS)
    assert requirements.items() <= constraints.items()
    assert {name for name in constraints if "cdktf" in name} == set()
    assert constraints["cdktn"].startswith("0.24.")


def _imported(path: Path) -> list[str]:
    """The dotted name of every absolute import in ``path``, wherever it sits in the file."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _local_files(module: str, importer: Path) -> list[Path] | None:
    """The project's files ``module`` loads (each package on its dotted path, then the module), or
    a Lambda's sibling module of ``importer``; None when the module is not the project's."""
    parts = module.split(".")
    if (ROOT / parts[0]).is_dir() or (ROOT / f"{parts[0]}.py").is_file():
        prefixes = [ROOT.joinpath(*parts[: n + 1]) for n in range(len(parts))]
        candidates = [c for p in prefixes for c in (p.with_suffix(".py"), p / "__init__.py")]
        return [c for c in candidates if c.is_file()]
    sibling = importer.parent / f"{parts[0]}.py"
    return [sibling] if sibling.is_file() else None


def third_party_imports_of_the_variant_tests() -> dict[str, set[str]]:
    """Every non-stdlib, non-local module reached from the variant's stack tests: their files,
    their conftest files and, transitively, every local module they import."""
    todo = [p for d in terrain.STACK_TEST_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    todo += [ROOT / "tests" / "conftest.py"]
    seen: set[Path] = set()
    found: dict[str, set[str]] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            local = _local_files(module, path)
            if local is None:
                found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
            else:
                todo += local
    return found


def test_the_terrain_venv_pins_every_package_the_variant_tests_import() -> None:
    # The variant's stack tests run in .venv-terrain, which holds only these pins: a test module
    # importing a package the app's .venv has from requirements-dev.txt (moto, flask) fails to
    # collect there, and pytest then runs none of the stack tests.
    pinned = set(terrain.read_pins(ROOT / terrain.CONSTRAINTS))
    distributions = importlib.metadata.packages_distributions()
    imported = third_party_imports_of_the_variant_tests()
    missing = {}
    for module, files in imported.items():
        names = {terrain.canonical(terrain.rename(d)) for d in distributions.get(module, [module])}
        if not names & pinned:
            missing[module] = sorted(files)
    assert missing == {}, f"not in {terrain.CONSTRAINTS}: {missing}"
    assert {"boto3", "pytest", "syrupy"} <= set(imported)


# --- normalization ------------------------------------------------------------------------


def stack(version: str, aws: str, source: str = "hashicorp/aws", bucket: str = "b") -> str:
    return json.dumps(
        {
            "//": {"metadata": {"stackName": "s", "version": version}},
            "resource": {"aws_s3_bucket": {"b": {"bucket": bucket, "tags": {}}}},
            "terraform": {"required_providers": {"aws": {"source": source, "version": aws}}},
        },
        indent=2,
    )


def test_comparison_hides_only_provider_source_version_and_framework_version() -> None:
    result = terrain.Comparison()
    result.add("s/cdk.tf.json", stack("0.21.0", "6.25.0", "aws"), stack("0.24.0", "6.69.1"))
    assert result.ok and result.normalized == 1
    assert result.differences == {
        "//.metadata.version": {("0.21.0", "0.24.0")},
        "terraform.required_providers.aws.source": {("aws", "hashicorp/aws")},
        "terraform.required_providers.aws.version": {("6.25.0", "6.69.1")},
    }


def test_comparison_fails_on_any_other_difference() -> None:
    result = terrain.Comparison()
    result.add("s/cdk.tf.json", stack("0.21.0", "6.25.0"), stack("0.24.0", "6.69.1", bucket="other"))
    assert not result.ok
    assert result.mismatched == ["s/cdk.tf.json"]


def test_comparison_counts_a_layout_only_difference_as_identical() -> None:
    old = stack("0.21.0", "6.25.0").replace('"tags": {}', '"tags": {\n        }')
    result = terrain.Comparison()
    result.add("s/cdk.tf.json", old, stack("0.24.0", "6.25.0"))
    assert result.ok and result.layout_only == ["s/cdk.tf.json"]


# --- the port on a small repository --------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    files = {
        "main.py": "from cdktf import App\nApp(outdir='cdktf.out').synth()\n",
        "stacks/s3.py": "from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket\n",
        "requirements.txt": "cdktf==0.21.0\ncdktf-cdktf-provider-aws==21.22.1\nconstructs==10.4.2\n",
        "requirements-dev.txt": "-r requirements.txt\npytest==9.2.0\n",
        "constraints-tools.txt": "packaging==23.2\n",
        "package.json": json.dumps(
            {"engines": {"node": ">=20"}, "devDependencies": {"cdktf-cli": "0.21.0"}}, indent=2
        )
        + "\n",
        "tests/__snapshots__/t/test_snapshot[dev].json": '{"version": "0.21.0"}\n',
        "docs/decisions/cdk-terrain.md": "Why we leave cdktf.\n",
        terrain.CONSTRAINTS: (ROOT / terrain.CONSTRAINTS).read_text(),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "logo.bin").write_bytes(b"\xff\xfecdktf\x00")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    (root / "untracked.py").write_text("import cdktf\n")  # never copied: not in git ls-files
    return root


def test_port_writes_the_variant_and_counts_what_changed(project: Path, tmp_path: Path) -> None:
    dest = tmp_path / "variant"
    report = terrain.port(project, dest)
    pins = terrain.read_pins(ROOT / terrain.CONSTRAINTS)
    assert (dest / "main.py").read_text() == "from cdktn import App\nApp(outdir='cdktf.out').synth()\n"
    assert (dest / "stacks/s3.py").read_text() == "from cdktn_provider_aws.s3_bucket import S3Bucket\n"
    assert terrain.read_pins(dest / "requirements.txt") == {
        "cdktn": pins["cdktn"],
        "cdktn-provider-aws": pins["cdktn-provider-aws"],
        "constructs": pins["constructs"],
    }
    assert (dest / "requirements-dev.txt").read_text() == "-r requirements.txt\npytest==9.2.0\n"
    assert (dest / "constraints-tools.txt").read_text() == "packaging==23.2\n", "not the app's venv"
    assert json.loads((dest / "package.json").read_text())["devDependencies"] == {
        terrain.CLI_PACKAGE: terrain.CLI_VERSION
    }
    for verbatim in ("tests/__snapshots__/t/test_snapshot[dev].json", "docs/decisions/cdk-terrain.md"):
        assert (dest / verbatim).read_bytes() == (project / verbatim).read_bytes()
    assert (dest / "logo.bin").read_bytes() == (project / "logo.bin").read_bytes()
    assert not (dest / "untracked.py").exists()
    assert report.files == 10
    assert report.changed == {"main.py": 1, "stacks/s3.py": 1, "requirements.txt": 3, "package.json": 2}
    assert report.by_kind()["pins"] == (1, 3)


def test_port_refuses_a_directory_that_holds_files(project: Path, tmp_path: Path) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(terrain.TerrainError, match="not empty"):
        terrain.port(project, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_cli_port_reports_and_errors_in_one_line(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("port", "--dest", str(tmp_path / "out"), "--no-lock")
    args.root = project
    assert args.func(args) == 0
    assert "lines changed in 4 files" in capsys.readouterr().out
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not empty" in err and "Traceback" not in err


def test_cli_check_rejects_zero_runs(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("check", "--runs", "0")
    assert args.func(args) == 2
    assert capsys.readouterr().err == "error: --runs: must be at least 1\n"


# --- the whole check: installs .venv-terrain ----------------------------------------------


@pytest.mark.terrain
def test_check_synthesizes_the_variant_identically_and_its_stack_tests_pass(
    request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if "terrain" not in request.config.option.markexpr:
        pytest.skip("installs .venv-terrain and synthesizes twice: select it with -m terrain")
    args = parse("check", "--runs", "1")
    code = args.func(args)
    out = capsys.readouterr().out
    assert code == 0, out
    assert ", 0 different" in out
    assert "terrain check: OK" in out


def test_the_variant_shares_the_untracked_installs_its_stack_tests_use() -> None:
    # A clone has neither (make test installs them): without the links the variant's policy and
    # trust tests fail in the variant alone (what CI's terrain-check met for the simulator).
    from tests.stacks import test_ci_trust

    simulator = test_ci_trust.SIMULATOR / "node_modules"
    for used in (simulator, policy.CHECKOV.parents[1], iam_policies.TOOLS_PYTHON.parents[1]):
        assert used.relative_to(ROOT).as_posix() in terrain.SHARED_INSTALLS
