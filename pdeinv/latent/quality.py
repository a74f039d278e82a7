r"""Quality of the latent autoencoder on held-out fields: the error floor of every latent method.

For test fields :math:`f_i` in physical units and their reconstructions
:math:`\tilde f_i = \text{phys}(D(E(\text{norm}(f_i))))`, the figure per channel :math:`c` is the
relative L2 error :math:`\lVert \tilde f_{i,c} - f_{i,c}\rVert / \lVert f_{i,c}\rVert`, mean and std
over the first ``n`` samples. A latent sampler cannot do better than this on those fields.
"""

from __future__ import annotations

import torch

from pdeinv.latent.autoencoder import FieldAutoencoder, relative_l2


@torch.no_grad()
def reconstruction_errors(autoencoder: FieldAutoencoder, physical: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel relative L2 error ``(N, C)`` of physical fields ``(N, C, S, S)``."""
    mean = autoencoder.mean.reshape(1, -1, 1, 1).to(physical)
    std = autoencoder.std.reshape(1, -1, 1, 1).to(physical)
    rebuilt = torch.cat([autoencoder((chunk - mean) / std) for chunk in physical.split(32)]) * std + mean
    return torch.stack([relative_l2(rebuilt[:, c], physical[:, c]) for c in range(physical.shape[1])], dim=1)


def evaluate_autoencoder(directory: str, data: str, n: int = 64) -> dict:
    """Measure the reconstruction error on the first ``n`` fields of ``data`` and store it in the card.

    Parameters
    ----------
    directory : str
        Autoencoder checkpoint directory.
    data : str
        HDF5 file of held-out fields (e.g. a task's test set) with the autoencoder's channels.
    n : int
        Number of fields.

    Returns
    -------
    dict
        ``{"data", "n", "<channel>": {"mean", "std"}}``, also written to ``card["quality"]["test"]``.
    """
    from pdeinv.datasets import FieldDataset
    from pdeinv.latent.checkpoint import load_autoencoder, read_autoencoder_card
    from pdeinv.priors.checkpoint import resolve, write_card

    autoencoder = load_autoencoder(directory)
    dataset = FieldDataset(data, channels=list(autoencoder.channels), normalize=False)
    if len(dataset) < n:
        raise ValueError(f"{data} has {len(dataset)} samples, fewer than the {n} requested")
    physical = torch.stack([dataset[i] for i in range(n)]).float()
    dataset.close()
    errors = reconstruction_errors(autoencoder, physical)
    figures = {"data": str(data), "n": n}
    for c, name in enumerate(autoencoder.channels):
        figures[name] = {"mean": float(errors[:, c].mean()), "std": float(errors[:, c].std())}
    card = read_autoencoder_card(resolve(directory))
    card.setdefault("quality", {})["test"] = figures
    write_card(resolve(directory), card)
    return figures
