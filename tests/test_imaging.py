"""Imaging operators on fields: blur, inpainting, downsampling, Fourier phase retrieval."""

from __future__ import annotations

import math

import pytest
import torch

from pdeinv.operators._imaging import periodic_dihedral_group
from pdeinv.operators.blur import CircularBlur, GaussianBlur, MotionBlur, gaussian_kernel, motion_kernel
from pdeinv.operators.downsampling import Downsampling
from pdeinv.operators.inpainting import BoxInpainting, RandomInpainting
from pdeinv.operators.phase_retrieval import FourierPhaseRetrieval
from pdeinv.operators.symmetry import Transform

S = 32

LINEAR = {
    "gaussian_blur": lambda **kw: GaussianBlur(S, 1.5, **kw),
    "motion_blur": lambda **kw: MotionBlur(S, 5.0, 30.0, **kw),
    "box_inpainting": lambda **kw: BoxInpainting(S, 0.5, **kw),
    "random_inpainting": lambda **kw: RandomInpainting(S, 0.3, seed=1, **kw),
    "downsampling": lambda **kw: Downsampling(S, 4, **kw),
}
ALL = {
    **LINEAR,
    "phase_retrieval": lambda **kw: FourierPhaseRetrieval(16, 2.0, **kw),
    "phase_retrieval_no_oversampling": lambda **kw: FourierPhaseRetrieval(16, 1.0, **kw),
}
# Group orders: default stride S/8 gives 8 x 8 shifts; periodic D4 has 8 elements; the box mask
# is D4-symmetric, a random mask is not; phase retrieval: sign x reflection (x 8 x 8 shifts at P = S).
ORDERS = {
    "gaussian_blur": 512,
    "motion_blur": 128,
    "box_inpainting": 8,
    "random_inpainting": 1,
    "downsampling": 64,
    "phase_retrieval": 4,
    "phase_retrieval_no_oversampling": 256,
}


def _field(op, batch=1, channels=2, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, op.resolution, op.resolution, generator=generator, dtype=dtype)


@pytest.mark.parametrize("name", LINEAR)
def test_adjointness_float64(name):
    op = LINEAR[name]()
    x = _field(op, channels=3, dtype=torch.float64)
    assert op.adjointness_test(x, num_samples=4) < 1e-6


def test_gaussian_blur_attenuates_fourier_modes_by_the_kernel_dft():
    # Blurring cos/sin(2 pi (m1 i + m2 j) / S) by the even separable kernel w[n1] w[n2] / Z^2
    # multiplies it by w_hat(m1) w_hat(m2), w_hat(m) = sum_n w[n] cos(2 pi m n / S) / sum_n w[n].
    sigma, radius = 1.5, 6  # radius = ceil(4 sigma)
    weights = {n: math.exp(-(n**2) / (2 * sigma**2)) for n in range(-radius, radius + 1)}

    def w_hat(m):
        return sum(w * math.cos(2 * math.pi * m * n / S) for n, w in weights.items()) / sum(weights.values())

    i = torch.arange(S, dtype=torch.float64)[:, None]
    j = torch.arange(S, dtype=torch.float64)[None, :]
    op = GaussianBlur(S, sigma)
    for (m1, m2), wave in (((1, 0), torch.cos), ((3, 5), torch.sin), ((16, 7), torch.cos), ((-4, 9), torch.sin)):
        x = wave(2 * math.pi * (m1 * i + m2 * j) / S)[None, None]
        expected = w_hat(m1) * w_hat(m2) * x
        torch.testing.assert_close(op.A(x), expected, rtol=0, atol=1e-6)


def test_circular_blur_is_the_periodic_convolution_sum():
    # (A x)[i, j] = sum_n k[n] x[i - n1, j - n2] (indices mod S), for a non-symmetric kernel of unit sum.
    generator = torch.Generator().manual_seed(3)
    kernel = torch.rand(5, 5, generator=generator, dtype=torch.float64)
    kernel = kernel / kernel.sum()
    op = CircularBlur(S, kernel)
    x = torch.randn(2, 3, S, S, generator=generator, dtype=torch.float64)
    direct = sum(
        float(kernel[a, b]) * torch.roll(x, shifts=(a - 2, b - 2), dims=(-2, -1)) for a in range(5) for b in range(5)
    )
    torch.testing.assert_close(op.A(x), direct, rtol=0, atol=1e-6)


def test_motion_kernel_is_the_line_integral_of_bilinear_hats():
    # Segment |t| <= 5/2 along x, hat footprint: k[n] = (1/5) * integral of max(0, 1 - |n - t|) dt:
    # 1/5 for |n| <= 1, (7/8)/5 for |n| = 2, (1/8)/5 for |n| = 3, zero elsewhere.
    profile = torch.tensor([1 / 8, 7 / 8, 1, 1, 1, 7 / 8, 1 / 8], dtype=torch.float64) / 5
    along_x = motion_kernel(5.0, 0.0)
    expected = torch.zeros_like(along_x)
    expected[:, along_x.shape[1] // 2] = profile
    torch.testing.assert_close(along_x, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(motion_kernel(5.0, 90.0), expected.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_declared_symmetries_commute(name):
    op = ALL[name]()
    assert len(op.symmetries) == ORDERS[name]
    errors = op.symmetries.commutation_errors(op.A, _field(op))
    assert max(errors.values()) < 1e-5, {k: v for k, v in errors.items() if v >= 1e-5}


def test_periodic_dihedral_group_fixes_the_origin():
    # Each element is a rotation/reflection about grid point (0, 0): (i, j) -> M (i, j) mod S with M one of
    # the 8 signed permutation matrices, so it fixes (0, 0) and sends (1, 3) to a signed permutation of it.
    group = periodic_dihedral_group(S)
    assert len(group) == 8
    delta = torch.zeros(1, 1, S, S)
    delta[..., 0, 0] = 1.0
    probe = torch.zeros(1, 1, S, S)
    probe[..., 1, 3] = 1.0
    images = {(a % S, b % S) for a, b in ((1, 3), (3, 1), (-1, 3), (3, -1), (1, -3), (-3, 1), (-1, -3), (-3, -1))}
    for g in group:
        assert torch.equal(g(delta), delta), g.name
        assert divmod(int(torch.argmax(g(probe))), S) in images, g.name


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("motion_blur", Transform("rot90", (("rot90", 1),))),
        ("random_inpainting", Transform("transpose", (("transpose",),))),
        ("downsampling", Transform("shift(1,0)", (("roll", 1, 0),))),
    ],
)
def test_undeclared_transforms_do_not_commute(name, transform):
    op = ALL[name]()
    assert all(g.ops != transform.ops for g in op.symmetries)
    x = _field(op)
    y = op.A(x)
    assert torch.linalg.vector_norm(op.A(transform(x)) - transform(y)) > 0.05 * torch.linalg.vector_norm(y)


def test_phase_retrieval_ambiguities_keep_the_measurement_and_others_change_it():
    op = FourierPhaseRetrieval(16, 2.0)
    x = _field(op)
    y = op.A(x)
    for g in op.symmetries:
        assert torch.linalg.vector_norm(op.A(g(x)) - y) < 1e-5 * torch.linalg.vector_norm(y), g.name
    # Not ambiguities once the field sits in a zero-padded frame: transposition and a circular
    # shift that wraps around the S x S support.
    for changed in (x.transpose(-2, -1), torch.roll(x, (3, 0), dims=(-2, -1))):
        assert torch.linalg.vector_norm(op.A(changed) - y) > 0.1 * torch.linalg.vector_norm(y)


def test_phase_retrieval_of_two_points_matches_the_closed_form():
    # x = delta(0,0) + delta(1,0), P = 2S: |F pad x|[k, l] = |1 + exp(-2 pi i k / P)| / P = 2 |cos(pi k / P)| / P.
    op = FourierPhaseRetrieval(8, 2.0)
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[..., 0, 0] = x[..., 1, 0] = 1.0
    k = torch.arange(16, dtype=torch.float64)[:, None]
    expected = (2 * torch.cos(math.pi * k / 16).abs() / 16).expand(16, 16)
    torch.testing.assert_close(op.A(x)[0, 0], expected, rtol=0, atol=1e-12)


def test_phase_retrieval_preserves_the_norm():
    op = FourierPhaseRetrieval(16, 1.5)
    x = _field(op, dtype=torch.float64)
    assert op.A(x).shape == (1, 2, 24, 24)
    torch.testing.assert_close(torch.linalg.vector_norm(op.A(x)), torch.linalg.vector_norm(x), rtol=1e-12, atol=0)


def test_phase_retrieval_gradient_matches_finite_differences():
    op = FourierPhaseRetrieval(5, 2.0)
    x = _field(op, channels=1, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(op.A, (x,))


def test_phase_retrieval_dagger_never_increases_the_misfit():
    # Error reduction alternates two projections under a unitary DFT, so ||A(x_k) - y|| is non-increasing.
    x = _field(FourierPhaseRetrieval(16), seed=5)
    misfits = []
    for iterations in (0, 10, 40):
        op = FourierPhaseRetrieval(16, 2.0, dagger_iterations=iterations)
        y = op.A(x)
        misfits.append(float(torch.linalg.vector_norm(op.A(op.A_dagger(y)) - y)))
    assert misfits[2] <= misfits[1] <= misfits[0]
    assert misfits[2] < 0.9 * misfits[0]


def test_downsampling_samples_the_blurred_field_on_the_coarse_grid():
    # A mode cos(2 pi m i / S) becomes w_hat(m) cos(2 pi m k / (S/f)) on the coarse grid (m < S / 2f).
    f, m = 4, 3
    op = Downsampling(S, f)
    sigma, radius = f / 2, 8
    w = [math.exp(-(n**2) / (2 * sigma**2)) for n in range(-radius, radius + 1)]
    w_hat = sum(wn * math.cos(2 * math.pi * m * n / S) for wn, n in zip(w, range(-radius, radius + 1))) / sum(w)
    i = torch.arange(S, dtype=torch.float64)
    x = torch.cos(2 * math.pi * m * i / S)[:, None].expand(S, S)[None, None]
    k = torch.arange(S // f, dtype=torch.float64)
    expected = (w_hat * torch.cos(2 * math.pi * m * k / (S // f)))[:, None].expand(S // f, S // f)
    torch.testing.assert_close(op.A(x)[0, 0], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_channels_are_independent_and_dtype_follows_input(name):
    op = ALL[name]()
    for dtype in (torch.float32, torch.float64):
        x = _field(op, batch=2, channels=3, dtype=dtype)
        y = op.A(x)
        assert y.dtype == dtype
        for c in range(3):
            torch.testing.assert_close(y[:, c : c + 1], op.A(x[:, c : c + 1]))


@pytest.mark.parametrize("name", ALL)
def test_noise_has_the_requested_standard_deviation(name):
    sigma = 0.05
    op = ALL[name](noise_level=sigma, rng=torch.Generator().manual_seed(7))
    x = _field(op, batch=64, channels=2)
    noise = op(x) - op.A(x)
    if "inpainting" in name:
        observed = op.mask.bool().expand_as(noise)
        assert torch.all(noise[~observed] == 0)
        noise = noise[observed]
    n = noise.numel()
    assert abs(float(noise.std()) / sigma - 1) < 5 / math.sqrt(2 * n)
    assert abs(float(noise.mean())) < 5 * sigma / math.sqrt(n)


def test_random_inpainting_mask_is_seeded_locally_and_exact_in_count():
    state = torch.random.get_rng_state()
    first = RandomInpainting(S, 0.2, seed=11)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert int(first.mask.sum()) == round(0.2 * S * S)
    assert torch.equal(first.mask, RandomInpainting(S, 0.2, seed=11).mask)
    assert not torch.equal(first.mask, RandomInpainting(S, 0.2, seed=12).mask)


def test_box_inpainting_hides_the_box_and_keeps_its_mask_stabiliser():
    centred = BoxInpainting(S, 0.5)
    assert centred.box == (8, 24, 8, 24)
    off_centre = BoxInpainting(S, (0, 10, 4, 28))
    assert int((off_centre.mask == 0).sum()) == 10 * 24
    assert torch.all(off_centre.mask[..., :10, 4:28] == 0)
    # [4, 28) is symmetric under j -> 31 - j, [0, 10) under no reflection of i.
    assert {g.name for g in off_centre.symmetries} == {"identity", "flip_y"}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda r: torch.zeros(r, r), "4 dimensions"),
        (lambda r: torch.zeros(1, 1, r + 2, r + 2), "resolution"),
        (lambda r: torch.zeros(1, 1, r, r, dtype=torch.int64), "floating-point"),
    ],
)
def test_bad_fields_raise(name, bad, match):
    op = ALL[name]()
    with pytest.raises(ValueError, match=match):
        op.A(bad(op.resolution))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: GaussianBlur(S, 0.0), "sigma_px"),
        (lambda: GaussianBlur(16, 3.0), "smaller blur or a finer grid"),
        (lambda: GaussianBlur(S, 1.0, noise_level=-0.1), "noise_level"),
        (lambda: GaussianBlur(S, 1.0, shift_stride=5), "shift_stride"),
        (lambda: MotionBlur(S, -1.0), "length_px"),
        (lambda: BoxInpainting(S, (10, 5, 0, 4)), "i0 < i1"),
        (lambda: BoxInpainting(S, (0, 40, 0, 4)), "i0 < i1"),
        (lambda: BoxInpainting(S, (0, S, 0, S)), "whole grid"),
        (lambda: BoxInpainting(S, 1.5), "fraction"),
        (lambda: RandomInpainting(S, 0.0), "fraction_kept"),
        (lambda: RandomInpainting(S, 1.2), "fraction_kept"),
        (lambda: Downsampling(S, 3), "dividing the resolution"),
        (lambda: Downsampling(S, 4, shift_stride=2), "multiple of 4"),
        (lambda: FourierPhaseRetrieval(S, 0.5), "oversampling must be >= 1"),
        (lambda: FourierPhaseRetrieval(1), "resolution"),
        (lambda: FourierPhaseRetrieval(S, 2.0, shift_stride=4), "only to oversampling = 1"),
    ],
)
def test_bad_configuration_raises(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_gaussian_kernel_is_normalised_and_truncated_at_four_sigma():
    kernel = gaussian_kernel(1.2)
    assert kernel.shape == (11, 11)
    torch.testing.assert_close(kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    ratio = torch.tensor(math.exp(1 / (2 * 1.2**2)), dtype=torch.float64)
    torch.testing.assert_close(kernel[5, 5] / kernel[5, 6], ratio)
