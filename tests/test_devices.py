"""The core paths on every available device, and no tensor made on a default device by library code.

Each device test runs on the CPU and, where a GPU is present, on CUDA (the ``device`` fixture of
``conftest.py``; the CUDA case is skipped with its reason otherwise). Its assertions are physical
(adjoint identities, PDE residuals, exact Gaussian posteriors) and that results stay on the device.

``test_library_code_names_the_device_of_every_tensor_it_creates`` runs the same paths under a
``TorchFunctionMode`` that records every factory call (``torch.zeros``, ``arange``, ``randn``, ...)
made from ``pdeinv`` without a ``device=`` argument: such a tensor lands on the default device
(``torch.set_default_device``), not on the device of the data.
"""

from __future__ import annotations

import copy
import functools
import math
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import pdeinv
from pdeinv.operators.helmholtz import Helmholtz
from pdeinv.operators.navier_stokes import NavierStokes2D
from pdeinv.operators.observation import PointObservation, random_points
from pdeinv.operators.sine_transform import dst1_2d
from pdeinv.priors.backbones import build_backbone
from pdeinv.priors.consistent import OperatorConsistentPrior
from pdeinv.priors.edm import EDMConfig, EDMDenoiser, GaussianPart
from pdeinv.priors.gaussian import helmholtz_joint_prior
from pdeinv.priors.spectral_gaussian import SpectralGaussianDenoiser
from pdeinv.sampling.kriging import Kriging, KrigingObservation, LinearGaussianModel
from pdeinv.sampling.sampler import PosteriorSampler, SamplerConfig
from pdeinv.sampling.terms import ObservationTerm

S = 16
FACTORIES = {
    torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.linspace, torch.logspace, torch.eye,
    torch.tensor, torch.randn, torch.rand, torch.randint, torch.randperm, torch.as_tensor, torch.fft.fftfreq,
    torch.fft.rfftfreq,
}
LIBRARY = Path(pdeinv.__file__).parent


def _field(device, channels: int = 1, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, S, S, generator=g, dtype=dtype).to(device)


def test_dst_and_helmholtz_adjoint_identity(device):
    helmholtz = Helmholtz(S, k=1.0).to(device)
    a, u = _field(device, seed=1), _field(device, seed=2)
    lhs, rhs = (helmholtz.A(a) * u).sum(), (a * helmholtz.A_adjoint(u)).sum()
    assert helmholtz.A(a).device.type == device.type
    assert abs(float(lhs - rhs)) < 1e-10 * float(lhs.abs() + rhs.abs())
    interior = a[..., 1:-1, 1:-1]
    torch.testing.assert_close(dst1_2d(dst1_2d(interior)), interior, rtol=0, atol=1e-12)


def test_navier_stokes_keeps_a_zero_mean_vorticity_on_the_device(device):
    """Vorticity of a periodic flow has zero mean; the zero-mean forcing keeps it zero."""
    solver = NavierStokes2D(S, time=0.1, dt=1e-2).to(device)
    w0 = _field(device, seed=3)
    wt = solver.A(w0 - w0.mean((-2, -1), keepdim=True))
    assert wt.device.type == device.type and torch.isfinite(wt).all()
    assert float(wt.mean((-2, -1)).abs().max()) < 1e-12 * float(wt.abs().max())
    assert float((wt - w0).abs().max()) > 1e-3  # it moved


@functools.lru_cache(maxsize=None)
def _prior_on_cpu():
    g = torch.Generator().manual_seed(3)
    exact = helmholtz_joint_prior(S)
    base = SpectralGaussianDenoiser.fit(exact.sample(800, g, dtype=torch.float64).float(), "dst")
    backbone = build_backbone("fno", channels=2, width=4, n_layers=1, n_modes=2)
    network = EDMDenoiser(backbone, EDMConfig(), channels=exact.channels, std=exact.std, resolution=S, base=base)
    return network


def _consistent(device, gaussian: bool):
    network = copy.deepcopy(_prior_on_cpu())  # .to(device) moves a module in place
    inner = GaussianPart(network) if gaussian else network
    return OperatorConsistentPrior(inner, Helmholtz(S, k=1.0)).to(device)


def test_gaussian_part_and_network_prior_stay_on_the_device(device):
    for gaussian in (True, False):
        prior = _consistent(device, gaussian)
        x = _field(device, channels=2, dtype=torch.float32)
        with torch.no_grad():
            out = prior.denoise(x, 0.5)
        assert out.device.type == device.type and torch.isfinite(out).all()
        residual = prior.operator.A(prior.std[0] * out[:, :1]) / prior.std[1] - out[:, 1:]
        assert float(residual.abs().max()) < 1e-4 * float(out[:, 1:].abs().max())


def _sampler_run(device, loss: str, steps: int = 2, gaussian: bool = True):
    prior = _consistent(device, gaussian)
    sensor = PointObservation(S, indices=random_points(7, S, seed=1)).to(device)
    y = torch.zeros(1, 1, 7, device=device)
    noise = 1e-2 if loss == "tweedie" else 0.0
    term = ObservationTerm(sensor, y, "solution", loss=loss, noise_std=noise, scale=1.0 / float(prior.std[1]))
    config = SamplerConfig(steps=steps, guidance="drift" if loss == "tweedie" else "step")
    generator = torch.Generator(device=device).manual_seed(0)
    return PosteriorSampler(prior, config, [term]).sample(2, generator, resolution=S)


@pytest.mark.parametrize("loss", ["tweedie", "mse"])
def test_tmpd_and_fundps_steps_run_on_the_device(device, loss):
    result = _sampler_run(device, loss)
    assert result.physical.device.type == device.type and torch.isfinite(result.physical).all()
    assert result.nfe == 3


def test_kriging_on_the_device_interpolates_noise_free_data(device):
    grf = helmholtz_joint_prior(S).grf
    model = LinearGaussianModel.from_grf(grf)
    model.device = device
    sensor = PointObservation(S, indices=random_points(6, S, seed=2)).to(device)
    truth = grf.sample(1, torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    kriging = Kriging(model, [KrigingObservation(sensor, "input", 0.0)], "input")
    mean = kriging.mean([sensor.A(truth)])
    assert mean.device.type == device.type
    torch.testing.assert_close(sensor.A(mean), sensor.A(truth), rtol=1e-8, atol=1e-10)


def test_one_training_step_on_the_device(device, tmp_path):
    from pdeinv.priors.data import TrainingData
    from pdeinv.priors.training import Trainer, TrainConfig

    g = torch.Generator().manual_seed(1)
    fields = torch.nn.functional.avg_pool2d(torch.randn(8, 2, S + 3, S + 3, generator=g), 4, stride=1)
    data = TrainingData(
        fields=(fields - fields.mean()) / fields.std(), channels=("source", "solution"), mean=[0.0, 0.0],
        std=[1.0, 2.0], provenance={"grid": "vertex", "attrs": {"pde": "helmholtz", "seed": 1}},
    )
    config = TrainConfig(
        out=str(tmp_path), backbone_options={"width": 8, "n_modes": 4, "n_layers": 1, "embedding_dim": 16},
        steps=1, batch_size=4, warmup=1, progress=False, device=device.type,
    )
    trainer = Trainer(config, data)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss, grad_norm, _ = trainer.train_step()
    assert math.isfinite(loss) and grad_norm > 0
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, trainer.model.parameters()))
    assert next(trainer.model.parameters()).device.type == device.type


class _FactoryWatch(TorchFunctionMode):
    """Records ``(file, function, line)`` of factory calls made by library code without ``device=``."""

    def __init__(self):
        super().__init__()
        self.calls: set[tuple[str, str, int]] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            if not (func is torch.as_tensor and args and isinstance(args[0], torch.Tensor)):
                frame = sys._getframe(1)
                while frame is not None and "torch" in Path(frame.f_code.co_filename).parts[-3:-1]:
                    frame = frame.f_back
                path = Path(frame.f_code.co_filename) if frame is not None else None
                if path is not None and LIBRARY in path.parents:
                    self.calls.add((str(path.relative_to(LIBRARY.parent)), frame.f_code.co_name, frame.f_lineno))
        return func(*args, **kwargs)




def test_library_code_names_the_device_of_every_tensor_it_creates(tmp_path):
    _prior_on_cpu()  # fitting draws training data; the check covers what runs on given fields
    watch = _FactoryWatch()
    cpu = torch.device("cpu")
    with watch:
        test_dst_and_helmholtz_adjoint_identity(cpu)
        test_navier_stokes_keeps_a_zero_mean_vorticity_on_the_device(cpu)
        test_gaussian_part_and_network_prior_stay_on_the_device(cpu)
        for loss in ("tweedie", "mse"):
            _sampler_run(cpu, loss)
        test_kriging_on_the_device_interpolates_noise_free_data(cpu)
    found = sorted(watch.calls)
    assert not found, "factory calls without device= (file, function, line): " + "; ".join(map(str, found))


def test_bf16_autocast_touches_the_network_alone_and_only_on_cuda(device):
    network = copy.deepcopy(_prior_on_cpu()).to(device)
    x = _field(device, channels=2, dtype=torch.float32)
    with torch.no_grad():
        full = network.denoise(x, 0.5)
        network.autocast_dtype = torch.bfloat16
        try:
            mixed = network.denoise(x, 0.5)
        finally:
            network.autocast_dtype = None
    assert mixed.dtype == torch.float32
    if device.type == "cpu":
        assert torch.equal(mixed, full)
    else:  # bf16 keeps 8 bits of mantissa: the network part moves by about 1e-2 of its size
        assert 0 < float((mixed - full).norm() / full.norm()) < 5e-2
