"""Package-level guarantees: typed, no import side effects, no test code at runtime."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pgpatterns
from pgpatterns.errors import PatternError

SRC = Path(pgpatterns.__file__).parent


def _library_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages([str(SRC)], prefix="pgpatterns.")
        if not info.name.startswith("pgpatterns.testing")
    )


def test_py_typed_and_version() -> None:
    assert (SRC / "py.typed").exists()
    assert pgpatterns.__version__


def test_library_never_imports_the_testing_package() -> None:
    modules = _library_modules()
    assert "pgpatterns.errors" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('pgpatterns.testing', 'pytest')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_error_derives_from_pattern_error() -> None:
    from pgpatterns import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    assert PatternError in classes
    assert all(issubclass(cls, PatternError) for cls in classes)


def test_every_module_declares_all() -> None:
    import importlib

    missing = [
        name for name in _library_modules()
        if not hasattr(importlib.import_module(name), "__all__")
    ]
    assert missing == []
