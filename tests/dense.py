"""Dense stand-ins the tests compare against: matrices of linear maps and a linear 'latent' space."""

from __future__ import annotations

import torch


def as_matrix(fn, size: int) -> torch.Tensor:
    """Dense matrix of a linear map on ``(1, 1, S, S)`` fields (columns = images of unit vectors)."""
    basis = torch.eye(size * size, dtype=torch.float64).reshape(-1, 1, size, size)
    return fn(basis).reshape(size * size, -1).T


class ScaledSpace:
    """A linear 'latent' space z = 2 x standing in for an autoencoder (the latent-space seam)."""

    field_space = False

    def encode(self, field):
        return 2.0 * field

    def decode(self, state):
        return 0.5 * state

    def state_shape(self, channels, resolution):
        return (channels, resolution, resolution)
