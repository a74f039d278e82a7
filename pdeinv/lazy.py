"""Packages whose public names are imported on first use, so that ``pdeinv --help`` stays light."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, str]) -> tuple[Callable, Callable]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict of str to str
        Public name to the submodule (relative to ``package``) that defines it.

    Examples
    --------
    In a package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"load": "checkpoint"})
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str):
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(modules))

    return __getattr__, __dir__
