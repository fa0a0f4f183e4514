"""``make diagram``: architecture diagrams derived from the synthesized Terraform JSON.

Usage: ``python scripts/diagram.py [--outdir DIR] [--check]``

Per stack: every managed resource is a node named by its Terraform address, grouped by tier and
service; an edge ``A --> B`` means an attribute of A references B (``${aws_x.b.arn}``, directly,
through a data source, or by ``depends_on``). Data sources, providers and outputs are not drawn.
Stacks whose graphs are identical (the same kind in several environments, usually) share one
diagram.

Writes Mermaid into ``docs/architecture.md`` (GitHub renders it) and, when Graphviz's ``dot`` is
installed, one SVG per diagram into ``docs/architecture/``. Each SVG carries the hash of the
graph it was drawn from, so tests/test_diagram.py can tell a stale picture without Graphviz.
Without ``--outdir`` every stack of every environment is synthesized into a temporary directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ops.runner import ROOT
from platform_config import naming

DOC = ROOT / "docs" / "architecture.md"
SVG_DIR = ROOT / "docs" / "architecture"
SVG_HASH_PREFIX = "<!-- mlops-infra diagram source sha256: "

# Longest prefix wins; the service names are what a reader looks for in the picture.
SERVICE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("aws_vpc_security_group_", "security groups"),
    ("aws_security_group", "security groups"),
    ("aws_vpc_endpoint", "VPC endpoints"),
    ("aws_vpc", "VPC"),
    ("aws_subnet", "VPC"),
    ("aws_route", "VPC"),
    ("aws_internet_gateway", "VPC"),
    ("aws_nat_gateway", "VPC"),
    ("aws_eip", "VPC"),
    ("aws_flow_log", "VPC"),
    ("aws_default_", "VPC"),
    ("aws_network_acl", "VPC"),
    ("aws_lb", "load balancer"),
    ("aws_alb", "load balancer"),
    ("aws_acm_", "load balancer"),
    ("aws_wafv2_", "load balancer"),
    ("aws_launch_template", "EC2 auto scaling"),
    ("aws_autoscaling_", "EC2 auto scaling"),
    ("aws_instance", "EC2 auto scaling"),
    ("aws_key_pair", "EC2 auto scaling"),
    ("aws_db_", "RDS"),
    ("aws_rds_", "RDS"),
    ("aws_elasticache_", "ElastiCache"),
    ("aws_s3_", "S3"),
    ("aws_dynamodb_", "DynamoDB"),
    ("aws_kms_", "KMS"),
    ("aws_iam_", "IAM"),
    ("aws_secretsmanager_", "Secrets Manager"),
    ("aws_ssm_", "SSM"),
    ("aws_cloudwatch_", "CloudWatch"),
    ("aws_sns_", "SNS"),
    ("databricks_job", "jobs"),
    ("databricks_cluster", "jobs"),
    ("databricks_notebook", "workspace files"),
    ("databricks_workspace_file", "workspace files"),
    ("databricks_directory", "workspace files"),
    ("databricks_repo", "workspace files"),
    ("databricks_mlflow_", "MLflow"),
    ("databricks_registered_model", "Unity Catalog"),
    ("databricks_catalog", "Unity Catalog"),
    ("databricks_schema", "Unity Catalog"),
    ("databricks_volume", "Unity Catalog"),
    ("databricks_grant", "access control"),
    ("databricks_permissions", "access control"),
    ("databricks_model_serving", "model serving"),
    ("random_", "generated values"),
)

TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("edge and network", ("load balancer", "VPC", "VPC endpoints", "security groups")),
    ("compute", ("EC2 auto scaling",)),
    ("data", ("RDS", "ElastiCache", "S3", "DynamoDB")),
    ("security", ("KMS", "IAM", "Secrets Manager", "SSM", "generated values")),
    ("observability", ("CloudWatch", "SNS")),
    (
        "Databricks workspace",
        ("workspace files", "jobs", "MLflow", "Unity Catalog", "model serving", "access control"),
    ),
)

_EXPR = re.compile(r"\$\{(.*?)\}", re.DOTALL)
_ADDRESS = re.compile(r"\b(data\.)?([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_-]*)")


def service_of(rtype: str) -> str:
    best = ""
    service = ""
    for prefix, name in SERVICE_PREFIXES:
        if rtype.startswith(prefix) and len(prefix) > len(best):
            best, service = prefix, name
    if service:
        return service
    provider, _, rest = rtype.partition("_")
    return f"{provider} {rest.split('_')[0]}" if rest else provider


def tier_of(service: str) -> str:
    for tier, services in TIERS:
        if service in services:
            return tier
    return "other"


@dataclass(frozen=True)
class Node:
    address: str
    rtype: str
    multiple: str = ""

    @property
    def service(self) -> str:
        return service_of(self.rtype)

    @property
    def tier(self) -> str:
        return tier_of(self.service)

    @property
    def label(self) -> str:
        return f"{self.address} [{self.multiple}]" if self.multiple else self.address


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def grouped(self) -> Iterator[tuple[str, list[tuple[str, list[Node]]]]]:
        """(tier, [(service, nodes)]) in a stable, readable order."""
        tier_order = [t for t, _ in TIERS] + ["other"]
        by_tier: dict[str, dict[str, list[Node]]] = {}
        for node in self.nodes.values():
            by_tier.setdefault(node.tier, {}).setdefault(node.service, []).append(node)
        for tier in sorted(by_tier, key=lambda t: (tier_order.index(t), t)):
            services = by_tier[tier]
            yield tier, [(s, sorted(services[s], key=lambda n: n.address)) for s in sorted(services)]


def _strings(value: Any, skip_metadata: bool = True) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if skip_metadata and key == "//":
                continue
            yield from _strings(item, skip_metadata)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, skip_metadata)


def references(attrs: Mapping[str, Any], known: Iterable[str]) -> set[str]:
    """Addresses (``type.name`` or ``data.type.name``) in ``known`` that ``attrs`` refers to."""
    known_set = set(known)
    found: set[str] = set()
    for text in _strings({k: v for k, v in attrs.items() if k != "depends_on"}):
        for expr in _EXPR.findall(text):
            for data, rtype, name in _ADDRESS.findall(expr):
                address = f"{data}{rtype}.{name}"
                if address in known_set:
                    found.add(address)
    for dep in attrs.get("depends_on") or []:
        if isinstance(dep, str) and dep in known_set:
            found.add(dep)
    return found


def build_graph(doc: Mapping[str, Any]) -> Graph:
    """The resource graph of one synthesized stack (``cdk.tf.json`` parsed)."""
    resources: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for rtype, items in (doc.get("resource") or {}).items():
        for name, attrs in items.items():
            resources[f"{rtype}.{name}"] = (rtype, attrs)
    data: dict[str, Mapping[str, Any]] = {}
    for rtype, items in (doc.get("data") or {}).items():
        for name, attrs in items.items():
            data[f"data.{rtype}.{name}"] = attrs
    known = set(resources) | set(data)
    direct = {addr: references(attrs, known) for addr, (_, attrs) in resources.items()}
    via_data = {addr: references(attrs, known) for addr, attrs in data.items()}

    def resolve(targets: set[str], seen: frozenset[str] = frozenset()) -> set[str]:
        out: set[str] = set()
        for target in targets:
            if target in resources:
                out.add(target)
            elif target in via_data and target not in seen:
                out |= resolve(via_data[target], seen | {target})
        return out

    graph = Graph()
    for addr, (rtype, attrs) in resources.items():
        multiple = "count" if "count" in attrs else "for_each" if "for_each" in attrs else ""
        graph.nodes[addr] = Node(addr, rtype, multiple)
    for addr, targets in direct.items():
        for target in resolve(targets):
            if target != addr:
                graph.edges.add((addr, target))
    return graph


def _mermaid_id(address: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", address.replace(".", "__"))


def _group_id(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", name)


def mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for tier, services in graph.grouped():
        tier_id = _group_id("t_", tier)
        lines.append(f'  subgraph {tier_id}["{tier}"]')
        for service, nodes in services:
            lines.append(f'    subgraph {_group_id(tier_id + "_", service)}["{service}"]')
            lines += [f'      {_mermaid_id(n.address)}["{n.label}"]' for n in nodes]
            lines.append("    end")
        lines.append("  end")
    lines += [f"  {_mermaid_id(a)} --> {_mermaid_id(b)}" for a, b in sorted(graph.edges)]
    return "\n".join(lines) + "\n"


def dot(graph: Graph, title: str) -> str:
    lines = [
        "digraph architecture {",
        f'  label="{title}"; labelloc=t; rankdir=LR; fontname="Helvetica";',
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", fontname="Helvetica", fontsize=10];',
        '  edge [color="#555555", arrowsize=0.6];',
    ]
    for tier, services in graph.grouped():
        tier_id = _group_id("cluster_t_", tier)
        lines.append(f'  subgraph {tier_id} {{ label="{tier}"; style=rounded; color="#888888";')
        for service, nodes in services:
            lines.append(
                f'    subgraph {_group_id(tier_id + "_", service)} {{ label="{service}"; style=dashed;'
            )
            lines += [f'      "{n.address}" [label="{n.label}"];' for n in nodes]
            lines.append("    }")
        lines.append("  }")
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(graph.edges)]
    lines.append("}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Diagram:
    """One picture, shared by the stacks whose graphs are identical."""

    kind: str
    stacks: tuple[str, ...]
    graph_mermaid: str
    graph_dot: str
    resources: int
    edges: int

    shared_by_all: bool = False

    @property
    def slug(self) -> str:
        """The kind's name when all its stacks share this diagram, else kind and environments."""
        envs = [naming.parse_stack_id(s)[1] for s in self.stacks]
        return self.kind if self.shared_by_all else "-".join([self.kind, *envs])

    @property
    def source_hash(self) -> str:
        return hashlib.sha256(self.graph_dot.encode()).hexdigest()


def load_stacks(outdir: Path) -> dict[str, dict[str, Any]]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        name: json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        for name, entry in manifest["stacks"].items()
    }


def diagrams(stacks: Mapping[str, Mapping[str, Any]]) -> list[Diagram]:
    def order(name: str) -> tuple[int, str]:
        kind, env = naming.parse_stack_id(name)
        return naming.STACK_KINDS.index(kind), env

    grouped: dict[tuple[str, str], list[str]] = {}
    graphs: dict[str, Graph] = {}
    for name in sorted(stacks, key=order):
        kind, _ = naming.parse_stack_id(name)
        graph = build_graph(stacks[name])
        graphs[name] = graph
        grouped.setdefault((kind, mermaid(graph)), []).append(name)
    kinds_count: dict[str, int] = {}
    for kind, _ in grouped:
        kinds_count[kind] = kinds_count.get(kind, 0) + 1
    out = []
    for (kind, text), names in grouped.items():
        graph = graphs[names[0]]
        shared = kinds_count[kind] == 1
        title = f"{kind} ({', '.join(names)})"
        out.append(
            Diagram(kind, tuple(names), text, dot(graph, title), len(graph.nodes), len(graph.edges), shared)
        )
    return out


def render_markdown(items: Iterable[Diagram]) -> str:
    items = list(items)
    lines = [
        "# Architecture",
        "",
        "<!-- Generated by `make diagram` (scripts/diagram.py) from the synthesized Terraform JSON:",
        "     do not edit. tests/test_diagram.py fails when this file is stale. -->",
        "",
        "One diagram per stack, derived from its synthesized `cdk.tf.json`: every managed resource is",
        "a node named by its Terraform address, grouped by tier and service; an arrow `A --> B` means",
        "that A references B (one of A's attributes uses B, directly or through a data source, or A",
        "`depends_on` B), so B is created first. Data sources, providers and outputs are not drawn;",
        "`[count]` marks a resource with several instances. Stacks of one kind share a diagram where",
        "their graphs are identical. `make diagram` also writes SVG renderings to `docs/architecture/`",
        "when Graphviz is installed.",
        "",
        "| diagram | stacks | resources | references |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| [{d.slug}](#{d.slug}) | {', '.join(f'`{s}`' for s in d.stacks)} | {d.resources} | {d.edges} |"
        for d in items
    ]
    for d in items:
        lines += [
            "",
            f"## {d.slug}",
            "",
            f"Stacks: {', '.join(f'`{s}`' for s in d.stacks)}. {d.resources} resources, {d.edges} references.",
            "",
            "```mermaid",
            d.graph_mermaid.rstrip("\n"),
            "```",
        ]
    return "\n".join(lines) + "\n"


def write_svgs(items: Iterable[Diagram], svg_dir: Path, dot_binary: str) -> list[Path]:
    svg_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d in items:
        proc = subprocess.run(
            [dot_binary, "-Tsvg"], input=d.graph_dot, capture_output=True, text=True, check=True
        )
        svg = proc.stdout
        marker = f"{SVG_HASH_PREFIX}{d.source_hash} -->\n"
        head, sep, rest = svg.partition("?>\n")
        svg = head + sep + marker + rest if sep else marker + svg
        path = svg_dir / f"{d.slug}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


def stale_svgs(items: Iterable[Diagram], svg_dir: Path) -> list[str]:
    """SVGs that do not match the current diagrams (wrong hash, or no such diagram)."""
    expected = {f"{d.slug}.svg": d.source_hash for d in items}
    problems = []
    for path in sorted(svg_dir.glob("*.svg")) if svg_dir.is_dir() else []:
        want = expected.get(path.name)
        if want is None:
            problems.append(f"{path.name}: no such diagram any more")
        elif f"{SVG_HASH_PREFIX}{want} -->" not in path.read_text(encoding="utf-8"):
            problems.append(f"{path.name}: drawn from an older graph")
    return problems


def synthesize_all(outdir: Path) -> None:
    env = dict(os.environ, CDKTF_OUTDIR=str(outdir), MLOPS_QUIET="1", MLOPS_ENVS="", MLOPS_STACKS="")
    env.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=ROOT, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--outdir", type=Path, help="use this synthesized output (default: synthesize)")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/architecture.md is stale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="diagram-") as scratch:
        outdir = args.outdir
        if outdir is None:
            outdir = Path(scratch) / "cdktf.out"
            print("synthesizing every stack of every environment ...")
            try:
                synthesize_all(outdir)
            except subprocess.CalledProcessError as exc:
                print(f"synthesis failed (exit {exc.returncode})", file=sys.stderr)
                return 1
        items = diagrams(load_stacks(outdir))
    text = render_markdown(items)
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        problems = ([] if current == text else [f"{DOC.relative_to(ROOT)} is stale"]) + stale_svgs(
            items, SVG_DIR
        )
        for problem in problems:
            print(f"{problem}: run `make diagram`", file=sys.stderr)
        return 1 if problems else 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} ({len(items)} diagrams)")
    dot_binary = shutil.which("dot")
    if dot_binary is None:
        for problem in stale_svgs(items, SVG_DIR):
            print(f"warning: docs/architecture/{problem}; install Graphviz to redraw it", file=sys.stderr)
        print("Graphviz `dot` not installed: SVGs not drawn (Mermaid only)")
        return 0
    for old in SVG_DIR.glob("*.svg") if SVG_DIR.is_dir() else []:
        old.unlink()
    for path in write_svgs(items, SVG_DIR, dot_binary):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
