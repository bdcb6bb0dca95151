"""`python -m gitpersist` runs the gitpersist command."""

import sys

from .cli import main

sys.exit(main())
