"""Run by .venv-tools' Python (parliament lives there, not in the app's .venv): read
``[{"id": ..., "policy": "<json>"}, ...]`` on stdin, print ``[{"id", "issue", "severity", "title",
"detail", "sid"}, ...]`` for every finding, community auditors included."""

from __future__ import annotations

import json
import sys

from parliament import analyze_policy_string  # type: ignore[import-not-found]


def main() -> None:
    out = []
    for item in json.load(sys.stdin):
        policy = analyze_policy_string(item["policy"], include_community_auditors=True)
        for finding in policy.findings:
            location = finding.location if isinstance(finding.location, dict) else {}
            sid = location.get("sid") or ""
            out.append(
                {
                    "id": item["id"],
                    "issue": finding.issue,
                    "severity": finding.severity,
                    "title": finding.title,
                    "detail": json.loads(json.dumps(finding.detail, default=str)),
                    "sid": sid if isinstance(sid, str) else str(sid),
                }
            )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
