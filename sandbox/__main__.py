"""`python -m sandbox` entry point."""

import sys

from sandbox.cli import main

sys.exit(main())
