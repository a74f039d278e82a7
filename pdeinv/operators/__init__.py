"""Forward operators as deepinv ``Physics``, each with the symmetry group it commutes with.

Fields are ``(batch, channels, S, S)`` tensors with ``field[..., i, j]`` at ``(x_i, y_j)``.
"""

from pdeinv.operators.base import check_finite, finite_checks_enabled
from pdeinv.operators.blur import CircularBlur, GaussianBlur, MotionBlur
from pdeinv.operators.darcy import Darcy
from pdeinv.operators.downsampling import Downsampling
from pdeinv.operators.helmholtz import Helmholtz, Poisson
from pdeinv.operators.inpainting import BoxInpainting, RandomInpainting
from pdeinv.operators.navier_stokes import NavierStokes2D
from pdeinv.operators.observation import PointObservation, random_points
from pdeinv.operators.phase_retrieval import FourierPhaseRetrieval
from pdeinv.operators.symmetry import SymmetryGroup, Transform

__all__ = [
    "BoxInpainting",
    "CircularBlur",
    "Darcy",
    "Downsampling",
    "FourierPhaseRetrieval",
    "GaussianBlur",
    "Helmholtz",
    "MotionBlur",
    "NavierStokes2D",
    "PointObservation",
    "Poisson",
    "RandomInpainting",
    "SymmetryGroup",
    "Transform",
    "check_finite",
    "finite_checks_enabled",
    "random_points",
]
