"""``python -m pgpatterns``: the ``pgpatterns`` command line."""

from pgpatterns.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
