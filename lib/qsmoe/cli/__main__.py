"""``python -m qsmoe.cli``: the same as the ``qsmoe`` command."""
import sys

from qsmoe.cli import main

sys.exit(main())
