"""``python -m dropout_ref`` runs the command line."""

import sys

from dropout_ref.cli import main

sys.exit(main())
