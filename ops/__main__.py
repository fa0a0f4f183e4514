import importlib.util
import os
import sys
from pathlib import Path

# `python -m ops` works from whatever Python is on the PATH: another interpreter hands the command
# over to the project's virtualenv (created by `make setup`), unchanged. A copy of the project
# without that virtualenv (the CDK Terrain variant runs with its own) goes on with this
# interpreter if it has the app's packages, and otherwise says what to run, in one line.
_ROOT = Path(__file__).resolve().parent.parent
_VENV = _ROOT / ".venv"
if Path(sys.prefix).resolve() != _VENV.resolve() and (_VENV / "bin" / "python").exists():
    os.execv(str(_VENV / "bin" / "python"), [str(_VENV / "bin" / "python"), "-m", "ops", *sys.argv[1:]])
if _missing := [m for m in ("cdktf", "hcl2", "pydantic") if importlib.util.find_spec(m) is None]:
    print(
        f"error: {sys.executable} lacks the app's packages ({', '.join(_missing)}) and {_VENV} does "
        "not exist: run `make setup` first (README, Set up)",
        file=sys.stderr,
    )
    sys.exit(2)

from stacks import provider_import  # noqa: E402

# Node 20 is the project's floor (README) and end-of-life for jsii, which warns on every start.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
if "synth" in sys.argv[1:]:
    # synth imports and validates the configuration (~0.3 s) before it needs the jsii kernel:
    # launched now, node boots and loads cdktf on the other core meanwhile (stacks/jsii_kernel.py).
    # Other commands start it when they need it.
    provider_import.start_kernel()

# After the kernel start: importing the commands takes 0.2 s, which the start overlaps.
from ops.cli import main  # noqa: E402

sys.exit(main())
