"""``python -m kato.lab.zoo serve --variant NAME …``: see :mod:`kato.lab.zoo._server`."""

import sys

from kato.lab.zoo._server import main

sys.exit(main())
