"""``python -m benchmarks`` (what ``make bench`` runs)."""

import sys

from benchmarks.cli import main

sys.exit(main())
