"""Packages that extend pdeinv: they register methods, prior loaders or card sections when imported.

The lower layers never import their extensions. A method name or a checkpoint section they do
not know makes them call :func:`load_plugins`, which imports pdeinv's own latent space and every
package declared under the ``pdeinv.plugins`` entry-point group, once per process. A package of
one's own plugs in the same way, from its ``pyproject.toml``::

    [project.entry-points."pdeinv.plugins"]
    mymethods = "mypackage.pdeinv_methods"

where ``mypackage.pdeinv_methods`` calls :func:`pdeinv.sampling.methods.register` at import.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

GROUP = "pdeinv.plugins"
BUILTIN_PLUGINS = ("pdeinv.latent",)  # autoencoders, latent priors and the latent-space methods
_loaded: list[str] = []


def load_plugins() -> tuple[str, ...]:
    """Import the built-in and the declared plugins (once); returns their module names."""
    if not _loaded:
        declared = [entry.value for entry in entry_points(group=GROUP)]
        _loaded.extend(dict.fromkeys([*BUILTIN_PLUGINS, *declared]))
        for module in _loaded:
            importlib.import_module(module)
    return tuple(_loaded)
