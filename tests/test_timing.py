"""Timers of the benchmark: regions charged once (outermost wins), backward passes included."""

from __future__ import annotations

import time

import pytest
import torch

from pdeinv.bench.runner import BenchConfig, run_benchmark
from pdeinv.bench.timing import CategoryTimer, patched
from pdeinv.datasets.generate import generate, make_config

PAUSE = 0.1


class _SlowIdentity(torch.autograd.Function):
    """Identity that sleeps PAUSE in its forward and 2 PAUSE in its backward."""

    @staticmethod
    def forward(ctx, x):
        time.sleep(PAUSE)
        return x.clone()

    @staticmethod
    def backward(ctx, gradient):
        time.sleep(2 * PAUSE)
        return gradient


def test_forward_and_backward_of_a_region_are_charged_to_it_and_nested_regions_to_the_outer_one():
    timer = CategoryTimer()
    slow = timer.wrap(_SlowIdentity.apply, "slow")
    outer = timer.wrap(lambda x: slow(x) * 2.0, "outer")
    x = torch.ones(3, requires_grad=True)
    loss = slow(x).sum() + outer(x).sum()
    time.sleep(PAUSE)  # outside every region
    loss.backward()
    # slow: PAUSE forward + 2 PAUSE backward; outer holds the second call, forward and backward.
    assert timer.seconds["slow"] == pytest.approx(3 * PAUSE, abs=0.5 * PAUSE)
    assert timer.seconds["outer"] == pytest.approx(3 * PAUSE, abs=0.5 * PAUSE)
    assert timer.calls["slow"] == 2 and timer.calls["outer"] == 1
    torch.testing.assert_close(x.grad, torch.full((3,), 3.0))


def test_patched_restores_class_and_instance_attributes():
    class Owner:
        def method(self):
            return "original"

    owner = Owner()
    with patched(Owner, "method", lambda self: "class"), patched(owner, "extra", 1):
        assert owner.method() == "class" and owner.extra == 1
    assert owner.method() == "original" and not hasattr(owner, "extra")


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "helmholtz_64_test.h5"
    return generate(make_config("helmholtz", 64, 1, 2), path, progress=False)


def test_bench_records_the_denoisers_share_of_the_time(test_file):
    guided = run_benchmark(BenchConfig("helmholtz-inverse-64", "fundps", n=1, steps=2, data=str(test_file)))
    assert 0 < guided["denoiser_seconds"] < guided["seconds_per_sample"]
    baseline = run_benchmark(BenchConfig("helmholtz-inverse-64", "kriging", n=1, data=str(test_file)))
    assert baseline["denoiser_seconds"] == 0
