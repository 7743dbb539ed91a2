"""`python -m kit`: the same program as the `kit` command."""

import sys

from .cli import main

sys.exit(main())
