"""``python -m ruvector_attention train ...``: the same as the ``ruvector-attention`` command."""

import sys

from .cli import main

sys.exit(main())
