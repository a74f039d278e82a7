"""Gaussian random fields, (input, solution) pair generation, the HDF5 store and its torch/xarray views.

Public names (all importable from ``pdeinv.datasets`` except ``open_xarray``, which lives in
``pdeinv.datasets.xarray_view`` so that importing the package does not import xarray)::

    GaussianRandomField, ns_vorticity_grf, helmholtz_source_grf,     pdeinv.datasets.grf
    darcy_level_set_grf, darcy_permeability
    sample_generator                                                   pdeinv.datasets.seeding
    GenerationConfig, make_config, generate                            pdeinv.datasets.generate
    FieldDataset                                                       pdeinv.datasets.field_dataset
    open_xarray                                                        pdeinv.datasets.xarray_view
    check_file, summary                                                pdeinv.datasets.inspection
    SPLIT_SEEDS, benchmark_set_configs                                 pdeinv.datasets.splits
"""

from pdeinv.datasets.field_dataset import FieldDataset
from pdeinv.datasets.generate import GenerationConfig, generate, make_config
from pdeinv.datasets.grf import (
    GaussianRandomField,
    darcy_level_set_grf,
    darcy_permeability,
    helmholtz_source_grf,
    ns_vorticity_grf,
)
from pdeinv.datasets.inspection import check_file, summary
from pdeinv.datasets.seeding import sample_generator
from pdeinv.datasets.splits import SPLIT_SEEDS, benchmark_set_configs

__all__ = [
    "FieldDataset",
    "GaussianRandomField",
    "GenerationConfig",
    "SPLIT_SEEDS",
    "benchmark_set_configs",
    "check_file",
    "darcy_level_set_grf",
    "darcy_permeability",
    "generate",
    "helmholtz_source_grf",
    "make_config",
    "ns_vorticity_grf",
    "sample_generator",
    "summary",
]
