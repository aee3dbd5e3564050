"""``python -m pgpatterns``: the ``pgpatterns`` command line."""

from pgpatterns.cli import main

raise SystemExit(main())
