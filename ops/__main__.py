import os
import sys

from stacks import provider_import

# Node 20 is the project's floor (README) and end-of-life for jsii, which warns on every start.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
if "synth" in sys.argv[1:]:
    # synth imports and validates the configuration (~0.3 s) before it needs the jsii kernel:
    # launched now, node boots and loads cdktf on the other core meanwhile (stacks/jsii_kernel.py).
    # Other commands start it when they need it.
    provider_import.start_kernel()

# After the kernel start: importing the commands takes 0.2 s, which the start overlaps.
from ops.cli import main

sys.exit(main())
