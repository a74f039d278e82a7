"""The PDE registry: every benchmark PDE is registered with a shipped prior whose card agrees with it,
and a PDE registered outside pdeinv is seen by the problem, the data generator and the command line."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from deepinv.physics import LinearPhysics

from pdeinv.bench.tasks import TASKS
from pdeinv.cli import main
from pdeinv.datasets.config import make_config
from pdeinv.datasets.inspection import check_file
from pdeinv.errors import UsageError
from pdeinv.pdes import PDESpec, get_pde, pde_names, pde_of, register_pde, spec
from pdeinv.priors import shipped_priors
from pdeinv.priors.checkpoint import CARD, SHIPPED
from pdeinv.sampling.problem import CHANNELS, InverseProblem, pde_physics


class Scaling(LinearPhysics):
    """The toy PDE's operator ``u = 2 a`` on an ``S x S`` grid."""

    def __init__(self, resolution: int):
        super().__init__(A=lambda a: 2 * a, A_adjoint=lambda u: 2 * u)
        self.resolution = resolution


def _toy_field(resolution: int):
    from pdeinv.datasets.grf import helmholtz_source_grf

    return helmholtz_source_grf(resolution)


TOY = PDESpec(
    name="toy-scaling",
    channels=("cause", "effect"),
    grid="vertex",
    operator=lambda resolution, settings: Scaling(resolution),
    input_field=_toy_field,
    default_prior="helmholtz-joint",
    data_rtol=1e-6,
    solves=lambda operator: isinstance(operator, Scaling),
    symmetries=lambda resolution: None,
)


@pytest.fixture
def toy(monkeypatch):
    """Register the toy PDE for one test only."""
    monkeypatch.setattr(spec, "_REGISTRY", dict(spec._REGISTRY))
    return register_pde(TOY)


def test_builtin_pdes_in_order():
    assert pde_names() == ("helmholtz", "poisson", "darcy", "navier-stokes")
    assert get_pde("helmholtz").defaults == {"k": 1.0} and get_pde("poisson").defaults == {"k": 0.0}
    assert pde_of(pde_physics("poisson", 5).operator) == "poisson"
    assert pde_of(pde_physics("helmholtz", 5).operator) == "helmholtz"
    assert pde_physics("darcy", 5).input_prior is None


@pytest.mark.parametrize("pde", sorted({task.pde for task in TASKS.values()}))
def test_task_pde_has_a_shipped_prior_that_agrees(pde):
    pde_spec = get_pde(pde)
    assert pde_spec.default_prior in shipped_priors()
    attrs = json.loads((SHIPPED / pde_spec.default_prior / CARD).read_text())["data"]["attrs"]
    assert attrs["pde"] == pde
    assert (*attrs["input_fields"], *attrs["output_fields"]) == pde_spec.channels
    assert attrs["grid"] == pde_spec.grid


def test_toy_pde_is_seen_everywhere(toy, capsys):
    assert "toy-scaling" in pde_names() and CHANNELS["toy-scaling"] == ("cause", "effect")
    setup = pde_physics("toy-scaling", 6)
    assert isinstance(setup.operator, Scaling) and pde_of(setup.operator) == "toy-scaling"
    a = torch.randn(1, 1, 6, 6)
    problem = InverseProblem(operator=setup.operator, sensor=LinearPhysics(), measurements=setup.operator.A(a),
                             observed="output", target="input", input_channel="cause", output_channel="effect",
                             pde="toy-scaling")
    assert problem.pde == "toy-scaling"
    config = make_config("toy-scaling", 6, 2, 0)
    assert (config.pde, config.k, config.viscosity) == ("toy-scaling", None, None)
    main(["data", "generate", "--help"])
    assert "toy-scaling" in capsys.readouterr().out


def test_toy_pde_generates_checked_data(toy, tmp_path):
    """``pdeinv data generate`` writes the toy pairs ``(a, 2 a)``, which ``pdeinv data check`` accepts."""
    path = tmp_path / "toy.h5"
    command = ["data", "generate", "toy-scaling", "--resolution", "6", "--n", "3", "--seed", "0", "--out", str(path)]
    assert main(command) == 0
    with h5py.File(path) as f:
        assert f.attrs["pde"] == "toy-scaling"
        cause, effect = np.asarray(f["t0_fields/cause"]), np.asarray(f["t0_fields/effect"])
    assert cause.shape[0] == 3 and np.abs(cause).max() > 0
    np.testing.assert_allclose(effect, 2 * cause, rtol=1e-6)
    assert check_file(path) == []


def test_unknown_pde_is_one_line():
    message = r"^unknown PDE 'heat'; choose one of helmholtz, poisson, darcy, navier-stokes$"
    with pytest.raises(UsageError, match=message):
        get_pde("heat")
    with pytest.raises(ValueError, match="unknown PDE 'heat'"):
        make_config("heat", 9, 1, 0)
    with pytest.raises(UsageError, match="unknown PDE 'heat'"):
        pde_physics("heat", 9)


def test_config_stays_torch_free():
    code = "import sys, pdeinv.datasets.config, pdeinv.pdes; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
