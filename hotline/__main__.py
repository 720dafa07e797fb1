"""`python -m hotline` is the `hotline` command."""

from __future__ import annotations

import sys

from hotline.cli import main

sys.exit(main())
