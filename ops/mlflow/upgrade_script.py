"""The script ``ops mlflow upgrade`` runs on one MLflow instance with SSM Run Command (as root):
it builds a venv of the target release next to the running one (``/opt/mlflow/upgrade/<release>``,
reused when its packages are already those), installs the instance's own Python (the IAM token
plugin, mlflow_schemas, mlflow_upgrade: the same files the boot script embeds) and runs
``python -m mlflow_upgrade report|upgrade`` against the stack's databases, as the db_user setting
with IAM tokens. The last line of its output is mlflow_upgrade's JSON.

The script travels gzip-compressed and base64-encoded in one command line, so that its exact text
is what this module renders and what the tests read."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from constructs_lib.user_data import PIP_REQUIREMENTS

INSTANCE_DIR = Path(__file__).resolve().parents[2] / "constructs_lib" / "instance"
FILES = {
    "RDS_IAM_PY": "mlflow_rds_iam.py",
    "SCHEMAS_PY": "mlflow_schemas.py",
    "UPGRADE_PY": "mlflow_upgrade.py",
}
ACTIONS = ("report", "upgrade")
MARKER = re.compile(r"@@[A-Z_:]+@@")

TEMPLATE = r"""#!/bin/bash
# MLflow @@RELEASE@@: `@@ACTION@@` of the schemas (rendered by ops/mlflow/upgrade_script.py).
set -euo pipefail
TARGET=/opt/mlflow/upgrade/@@RELEASE@@
install -d -m 0750 "$TARGET"
if [ "$(cat "$TARGET/installed" 2>/dev/null || true)" != "@@STAMP@@" ]; then
  python3.11 -m venv "$TARGET/venv"
  cat > "$TARGET/constraints.txt" <<'PINS'
@@CONSTRAINTS@@
PINS
  "$TARGET/venv/bin/pip" install --no-cache-dir --quiet --constraint "$TARGET/constraints.txt" \
    @@PACKAGES@@ >&2
  echo "@@STAMP@@" > "$TARGET/installed"
fi
SITE=$("$TARGET/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
cat > "$SITE/mlflow_rds_iam.py" <<'EOF_RDS_IAM_PY'
@@FILE:RDS_IAM_PY@@
EOF_RDS_IAM_PY
cat > "$SITE/mlflow_schemas.py" <<'EOF_SCHEMAS_PY'
@@FILE:SCHEMAS_PY@@
EOF_SCHEMAS_PY
cat > "$SITE/mlflow_upgrade.py" <<'EOF_UPGRADE_PY'
@@FILE:UPGRADE_PY@@
EOF_UPGRADE_PY
install -d "$SITE/mlflow_rds_iam-1.0.dist-info"
printf 'Metadata-Version: 2.1\nName: mlflow-rds-iam\nVersion: 1.0\n' > "$SITE/mlflow_rds_iam-1.0.dist-info/METADATA"
printf '[sqlalchemy.plugins]\nrds_iam = mlflow_rds_iam:RdsIamAuth\n' > "$SITE/mlflow_rds_iam-1.0.dist-info/entry_points.txt"
export MLFLOW_DISABLE_TELEMETRY=true
"$TARGET/venv/bin/python" -m mlflow_upgrade @@ACTION@@ --settings "@@PARAMETER_PATH@@" --region "@@REGION@@"
"""


def render(action: str, release: str, constraints: Sequence[str], parameter_path: str, region: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"action {action!r}: one of {ACTIONS}")
    packages = [f'"{PIP_REQUIREMENTS[0]}=={release}"', *PIP_REQUIREMENTS[1:]]
    stamp = hashlib.sha256("\n".join([*packages, "--", *constraints]).encode()).hexdigest()[:16]
    text = TEMPLATE
    for key, name in FILES.items():
        body = (INSTANCE_DIR / name).read_text().rstrip("\n")
        marker = f"EOF_{key}"
        if marker in body:
            raise ValueError(f"{name} contains its heredoc's end marker {marker}")
        text = text.replace(f"@@FILE:{key}@@", body)
    values = {
        "RELEASE": release,
        "ACTION": action,
        "STAMP": stamp,
        "CONSTRAINTS": "\n".join(constraints),
        "PACKAGES": " ".join(packages),
        "PARAMETER_PATH": parameter_path,
        "REGION": region,
    }
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = MARKER.search(text)
    if leftover:
        raise ValueError(f"unfilled marker in the upgrade script: {leftover.group(0)}")
    return text


def command_line(script: str) -> str:
    """The one shell line that carries ``script``: decoded, decompressed, run by bash."""
    packed = base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode()
    return f"echo {packed} | base64 -d | gunzip | bash"


def unpack(line: str) -> str:
    """The script a command line carries (tests; the rehearsal runs it this way too)."""
    packed = line.split()[1]
    return gzip.decompress(base64.b64decode(packed)).decode()
