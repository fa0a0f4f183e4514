"""``python -m tests.stacks.sensitive_attributes SCHEMA.json``: write ``sensitive_attributes.json``,
the attributes a provider marks sensitive (per resource and data source type, dotted paths through
nested blocks), and which of them are write-only, from ``terraform providers schema -json``.

The committed file was made from hashicorp/aws 5.100.0, the build reachable where it was written
(the registry is not reachable here, and 6.25.0's prebuilt Python bindings carry no sensitivity);
regenerate it from the pinned version's schema where the registry is reachable:

    terraform -chdir=cdktf.out/stacks/mlflow-dev init -backend=false
    terraform -chdir=cdktf.out/stacks/mlflow-dev providers schema -json > /tmp/schema.json
    .venv/bin/python -m tests.stacks.sensitive_attributes /tmp/schema.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).with_name("sensitive_attributes.json")
PROVIDER = "registry.terraform.io/hashicorp/aws"


def sensitive(block: dict[str, Any], path: str = "") -> list[tuple[str, bool]]:
    """(dotted path, write-only) of every sensitive attribute of ``block`` and its nested blocks."""
    found = [
        (path + name, bool(attribute.get("write_only")))
        for name, attribute in sorted(block.get("attributes", {}).items())
        if attribute.get("sensitive")
    ]
    for name, nested in sorted(block.get("block_types", {}).items()):
        found += sensitive(nested["block"], f"{path}{name}.")
    return found


def table(schema: dict[str, Any], source: str) -> dict[str, Any]:
    provider = schema["provider_schemas"][PROVIDER]
    out: dict[str, Any] = {"source": source, "resource": {}, "data": {}, "write_only": {}}
    for kind, key in (("resource_schemas", "resource"), ("data_source_schemas", "data")):
        for rtype, body in sorted(provider[kind].items()):
            found = sensitive(body["block"])
            if found:
                out[key][rtype] = [p for p, wo in found if not wo]
                if wo_paths := [p for p, wo in found if wo]:
                    out["write_only"][f"{key}.{rtype}"] = wo_paths
    return out


def main(argv: list[str]) -> int:
    schema = json.loads(Path(argv[0]).read_text())
    version = argv[1] if len(argv) > 1 else "see the schema"
    TARGET.write_text(json.dumps(table(schema, f"{PROVIDER} {version}"), indent=1, sort_keys=True) + "\n")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
