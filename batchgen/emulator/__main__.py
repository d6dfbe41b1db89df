"""``python -m batchgen.emulator --port 8765``."""

import sys

from batchgen.emulator.cli import main

sys.exit(main())
