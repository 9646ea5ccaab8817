"""``python -m bayesrca``: the command line (see :mod:`bayesrca.cli`)."""

from .cli import main

raise SystemExit(main())
