"""`python -m batchgen` runs the command line."""

from batchgen.cli import main

raise SystemExit(main())
