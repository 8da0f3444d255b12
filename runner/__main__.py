"""`python -m runner` is the same program as `kling-batch`."""

from __future__ import annotations

import sys

from runner.cli import main

sys.exit(main())
