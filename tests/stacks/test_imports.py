"""Provider packages load only where they are used, so a stack selection can skip them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
import main, platform_config.loader, platform_config.naming, constructs_lib.state_backend, stacks.app
before = sorted(m for m in sys.modules if m.startswith("cdktf_cdktf_provider"))
import stacks.databricks
after = sorted({m.split(".")[0] for m in sys.modules if m.startswith("cdktf_cdktf_provider")})
print(json.dumps({"before": before, "after": after}))
"""


def test_config_layer_and_databricks_stack_do_not_load_the_aws_provider() -> None:
    # One fresh interpreter: this session has long since imported every provider.
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["before"] == []
    assert "cdktf_cdktf_provider_aws" not in loaded["after"]
    assert "cdktf_cdktf_provider_databricks" in loaded["after"]
