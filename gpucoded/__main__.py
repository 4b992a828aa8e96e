"""``python -m gpucoded`` = the ``gpucoded`` command."""

import sys

from .cli import main

sys.exit(main())
