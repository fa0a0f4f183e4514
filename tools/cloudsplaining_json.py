"""Run by .venv-tools' Python (cloudsplaining lives there): read ``[{"id", "policy"}, ...]`` on
stdin, print per document the actions cloudsplaining flags because no resource constrains them
(``Resource: "*"``): privilege escalation, data exfiltration, permissions management, writes,
tagging."""

from __future__ import annotations

import json
import sys

from cloudsplaining.scan.policy_document import PolicyDocument  # type: ignore[import-not-found]

RISKS = (
    "allows_privilege_escalation",
    "allows_data_exfiltration_actions",
    "permissions_management_without_constraints",
    "write_actions_without_constraints",
    "tagging_actions_without_constraints",
)


def main() -> None:
    out = []
    for item in json.load(sys.stdin):
        document = PolicyDocument(json.loads(item["policy"]))
        risks = {}
        for risk in RISKS:
            found = getattr(document, risk)
            names = sorted({f["type"] if isinstance(f, dict) else str(f) for f in found})
            if names:
                risks[risk] = names
        out.append({"id": item["id"], "risks": risks})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
