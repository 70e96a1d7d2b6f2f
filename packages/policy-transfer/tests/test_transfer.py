"""Transfer metrics: steps to threshold, coverage@K, divergence, bootstrap intervals, zero-shot accounting."""

import numpy as np
import pytest
import torch
from policy_transfer import BatchedGridWorld, LatentPolicy, ObsSpec, init_population
from policy_transfer.transfer import (
    bootstrap_ci,
    coverage_at_k,
    policy_divergence,
    steps_to_threshold,
    zero_shot,
)


def test_steps_to_threshold_moving_average_censoring_and_offset():
    nan = float("nan")
    success = torch.tensor(
        [
            [1.0, 0.0, nan],
            [0.8, 0.0, 1.0],
            [1.0, 0.0, 1.0],
            [0.9, 0.0, 1.0],
        ]
    )
    steps, reached = steps_to_threshold(
        success, 100, threshold=0.9, window=2, offset=torch.tensor([0.0, 0.0, 50.0])
    )
    # run 0: windows 1.0 (iteration 0 alone: hit at once); run 1 never; run 2: NaN counts as 0 -> (0+1)/2, then 1.0
    assert steps.tolist() == [100.0, 400.0, 50.0 + 300.0]
    assert reached.tolist() == [True, False, True]
    steps, _ = steps_to_threshold(success, 100, threshold=0.9, window=3)
    assert steps[0].item() == 100.0  # a shorter window at the start


def test_coverage_at_k():
    succ = torch.zeros(2, 3, 4)  # runs, targets, latents
    succ[0, 0, 1] = 1.0
    succ[0, 2, 3] = 0.5
    succ[1, 1, :] = 0.4
    assert coverage_at_k(succ, 0.5).tolist() == pytest.approx([2 / 3, 0.0])


def test_bootstrap_ci():
    ci = bootstrap_ci([3.0, 3.0, 3.0])
    assert ci == {"mean": 3.0, "lo": 3.0, "hi": 3.0}
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(2, 1, 40)
    d = bootstrap_ci(a, b, n=4000)
    assert d["lo"] < d["mean"] < d["hi"] < 0
    assert abs(d["mean"] - (a.mean() - b.mean())) < 1e-12


def test_policy_divergence_zero_for_identical_policies():
    torch.manual_seed(0)
    fam = LatentPolicy(ObsSpec("index", 9), 4, latent_dim=2, hyper_init=0.0)
    fams = [fam, LatentPolicy(ObsSpec("index", 9), 4, latent_dim=2, hyper_init=1.0)]
    params = init_population(fams)
    div = policy_divergence(fam, params, torch.arange(9), torch.randn(2, 5, 2))
    assert div[0].item() < 1e-7 and div[1].item() > 0.01


def test_zero_shot_counts_every_scoring_step():
    fam = LatentPolicy(ObsSpec("index", 9), 4, latent_dim=1, hyper_init=0.0)
    params = init_population([fam])
    with torch.no_grad():
        params["pi_bias"].copy_(torch.tensor([[0.0, 50.0, 0.0, 0.0]]))  # always right

    def make_env(goals):
        return BatchedGridWorld("open3", goals, start=(1, 0), max_steps=5)

    out = zero_shot(fam, params, make_env, [(1, 2), (0, 2)], k=3, episodes=2, max_steps=5)
    assert out["success"].tolist() == [[[1.0] * 3, [0.0] * 3]]
    assert out["steps"].tolist() == [[2.0 * 6, 5.0 * 6]]
    assert out["latents"].shape == (1, 2, 3, 1)
