"""Gaussian random fields, (input, solution) pair generation, the HDF5 store and its torch/xarray views.

Public names (all importable from ``pdeinv.datasets`` except ``open_xarray``, which lives in
``pdeinv.datasets.xarray_view`` so that importing the package does not import xarray)::

    GaussianRandomField, ns_vorticity_grf, helmholtz_source_grf,     pdeinv.datasets.grf
    darcy_level_set_grf, darcy_permeability
    sample_generator                                                   pdeinv.datasets.seeding
    GenerationConfig, make_config                                      pdeinv.datasets.config
    generate                                                           pdeinv.datasets.generate
    FieldDataset                                                       pdeinv.datasets.field_dataset
    open_xarray                                                        pdeinv.datasets.xarray_view
    check_file, summary                                                pdeinv.datasets.inspection
    SPLIT_SEEDS, benchmark_set_configs                                 pdeinv.datasets.splits

The names are imported on first use (module ``__getattr__``), so reading a file's metadata
(``pdeinv data info``) does not import torch.
"""

from __future__ import annotations

import sys
import types

from pdeinv.lazy import lazy_exports

_MODULES = {
    "FieldDataset": "field_dataset",
    "GaussianRandomField": "grf",
    "GenerationConfig": "config",
    "SPLIT_SEEDS": "splits",
    "benchmark_set_configs": "splits",
    "check_file": "inspection",
    "darcy_level_set_grf": "grf",
    "darcy_permeability": "grf",
    "generate": "generate",
    "helmholtz_source_grf": "grf",
    "make_config": "config",
    "ns_vorticity_grf": "grf",
    "sample_generator": "seeding",
    "summary": "inspection",
}

__all__ = sorted(_MODULES)

__getattr__, __dir__ = lazy_exports(__name__, _MODULES)


class _Package(types.ModuleType):
    """Importing the module ``pdeinv.datasets.generate`` must not hide the function ``generate``."""

    def __setattr__(self, name: str, value) -> None:
        if name == "generate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
