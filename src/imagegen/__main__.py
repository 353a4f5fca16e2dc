"""``python -m imagegen``: the command line, also as ``torchrun ... -m imagegen VERB ...``."""

import sys

from .cli import main

sys.exit(main())
