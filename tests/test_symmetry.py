"""Group axioms of the symmetry building blocks, checked on index fields."""

import itertools

import pytest
import torch

from pdeinv.operators.symmetry import SymmetryGroup, Transform, dihedral_group, translation_group, trivial_group


def _probe(resolution: int = 6) -> torch.Tensor:
    """A field whose values are all distinct, so equal outputs mean equal permutations."""
    return torch.arange(resolution * resolution, dtype=torch.float64).reshape(1, 1, resolution, resolution)


def _signature(g: Transform, x: torch.Tensor) -> tuple:
    return tuple(g(x).flatten().tolist())


def test_dihedral_group_has_eight_distinct_elements_and_is_closed():
    x = _probe()
    group = dihedral_group()
    signatures = {_signature(g, x) for g in group}
    assert len(group) == 8 and len(signatures) == 8
    for g, h in itertools.product(group, group):
        assert _signature(g.then(h), x) in signatures


def test_dihedral_elements_match_their_geometric_definition():
    x = _probe()
    i, j = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    n = 5
    expected = {
        "rot180": x[..., n - i, n - j],
        "flip_x": x[..., n - i, j],
        "flip_y": x[..., i, n - j],
        "transpose": x[..., j, i],
        "anti_transpose": x[..., n - j, n - i],
    }
    by_name = {g.name: g for g in dihedral_group()}
    for name, field in expected.items():
        torch.testing.assert_close(by_name[name](x), field, rtol=0, atol=0)


@pytest.mark.parametrize("step", [(1, 0), (1, -1), (2, 2)])
def test_translation_group_inverse_and_order(step):
    x = _probe(8)
    group = translation_group(8, step)
    assert len({_signature(g, x) for g in group}) == len(group)
    for g in group:
        torch.testing.assert_close(g.inverse()(g(x)), x, rtol=0, atol=0)
    assert len(group) == {(1, 0): 8, (1, -1): 8, (2, 2): 4}[step]


def test_output_action_composes_and_inverts():
    sign_only_on_output = Transform("negate_out", (("flip", -1),), output_ops=(("negate",),))
    x = _probe()
    g = sign_only_on_output.then(sign_only_on_output)
    torch.testing.assert_close(g.on_output(x), x, rtol=0, atol=0)
    torch.testing.assert_close(sign_only_on_output.inverse().on_output(sign_only_on_output.on_output(x)), x)


def test_commutation_errors_detect_a_non_symmetry():
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    weights = torch.linspace(0.5, 2.0, 6)
    errors = dihedral_group().commutation_errors(lambda f: f * weights, x)
    assert errors["identity"] == 0.0
    assert errors["flip_x"] == 0.0
    assert errors["flip_y"] > 0.1


def test_sample_and_trivial_group():
    group = dihedral_group()
    drawn = {group.sample(torch.Generator().manual_seed(s)).name for s in range(64)}
    assert "identity" not in drawn and len(drawn) == 7
    assert trivial_group().sample().name == "identity"
    with pytest.raises(ValueError, match="identity"):
        SymmetryGroup("empty", [])
