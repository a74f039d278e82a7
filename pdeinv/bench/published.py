"""The anchors' published figures on the 128 x 128, 500-point tasks, to set measured rows beside.

Relative L2 error in percent, forward / inverse, on 128 x 128 grids with 500 random
measurement points, noise-free; the Darcy inverse figure is the error rate of the thresholded
binary permeability. Each method's number of sampling steps is part of its name. All figures
are from Table 1 of FunDPS (function-space diffusion posterior sampling, neuraloperator/FunDPS),
which lists DiffusionPDE at 2000 steps beside FunDPS at 200 and 500.
"""

from __future__ import annotations

PUBLISHED_SOURCES = {
    "FunDPS-500": "FunDPS, 500 steps",
    "FunDPS-200": "FunDPS, 200 steps",
    "DiffusionPDE-2000": "DiffusionPDE, 2000 steps",
}

# {(pde, direction): {method: error %}}; the task name is f"{prefix}-{direction}".
PUBLISHED = {
    ("darcy", "forward"): {"FunDPS-500": 2.49, "FunDPS-200": 2.88, "DiffusionPDE-2000": 6.07},
    ("darcy", "inverse"): {"FunDPS-500": 5.18, "FunDPS-200": 6.78, "DiffusionPDE-2000": 7.87},
    ("poisson", "forward"): {"FunDPS-500": 1.99, "FunDPS-200": 2.04, "DiffusionPDE-2000": 4.88},
    ("poisson", "inverse"): {"FunDPS-500": 20.47, "FunDPS-200": 24.04, "DiffusionPDE-2000": 21.10},
    ("helmholtz", "forward"): {"FunDPS-500": 2.13, "FunDPS-200": 2.20, "DiffusionPDE-2000": 12.64},
    ("helmholtz", "inverse"): {"FunDPS-500": 17.16, "FunDPS-200": 20.07, "DiffusionPDE-2000": 19.07},
    ("ns", "forward"): {"FunDPS-500": 3.32, "FunDPS-200": 3.99, "DiffusionPDE-2000": 3.78},
    ("ns", "inverse"): {"FunDPS-500": 8.48, "FunDPS-200": 9.87, "DiffusionPDE-2000": 9.63},
}


def published_task(pde: str, direction: str) -> str:
    """The benchmark task (:mod:`pdeinv.bench.tasks`) a published figure belongs to, e.g. ``ns-inverse``."""
    return f"{pde}-{direction}"
