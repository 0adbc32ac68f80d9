"""``python -m bkgdask.cli``."""

from . import main

main()
