"""``python -m dropout_ref`` runs the command line."""

import sys

from dropout_ref.cli.main import main

sys.exit(main())
