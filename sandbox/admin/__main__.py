"""`python -m sandbox.admin` entry point."""

import sys

from sandbox.admin.cli import main

sys.exit(main())
