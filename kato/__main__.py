"""``python -m kato`` is the ``kato`` command."""

import sys

from kato.cli import main

sys.exit(main())
