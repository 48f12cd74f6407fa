"""``python -m openshell_acceptance.image``: build or reuse the sandbox image."""

import sys

from . import main

sys.exit(main())
