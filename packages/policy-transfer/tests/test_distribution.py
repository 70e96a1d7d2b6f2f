"""The distribution over policies and its baselines: closed forms, the bound's constants, gradients, lambda."""

import math

import pytest
import torch
from policy_transfer import (
    BatchedGridWorld,
    BayesianPolicy,
    EnsemblePolicy,
    InferenceNet,
    LatentPolicy,
    ObsSpec,
    PPOConfig,
    entropy_lower_bound,
    init_population,
)
from policy_transfer.policy import gaussian_entropy
from policy_transfer.transfer import policy_divergence, train_population

SPEC = ObsSpec("index", 9)


def test_hypernetwork_head_is_an_affine_map_of_z():
    torch.manual_seed(0)
    fam = LatentPolicy(SPEC, 4, latent_dim=3, hyper_init=0.5)
    with torch.no_grad():
        fam.pi_base.normal_()
        fam.pi_bias.normal_()
    z = torch.randn(3)
    table = fam.pi_base + (fam.pi_hyper.view(9, 4, 3) @ z) + fam.pi_bias  # L(z) = B + W z
    logits, value = fam(torch.arange(9), z.expand(9, 3))
    torch.testing.assert_close(logits, table)
    assert value.shape == (9,)


def test_bayesian_entropy_is_closed_form_and_sampling_is_reparameterised():
    torch.manual_seed(0)
    fam = BayesianPolicy(SPEC, 4, init_std=0.3)
    with torch.no_grad():
        fam.log_std.uniform_(-2, 0)
        fam.mu.normal_()
    ref = torch.distributions.Normal(fam.mu, fam.log_std.exp()).entropy().sum()
    torch.testing.assert_close(fam.entropy(), ref)
    eps = fam.sample_latent(1)
    obs = torch.tensor([5])
    logits, _ = fam(obs, eps)
    w = fam.mu + fam.log_std.exp() * eps.view(9, 4)
    torch.testing.assert_close(logits[0], w[5] + fam.bias)
    # the same through the MLP trunk (vector observations)
    vec = BayesianPolicy(ObsSpec("vector", 5), 3)
    x = torch.randn(2, 5)
    eps = vec.sample_latent(2)
    logits, _ = vec(x, eps)
    h = vec.actor_trunk(x)
    manual = (
        torch.stack([h[i] @ (vec.mu + vec.log_std.exp() * eps[i].view(-1, 3)) for i in range(2)]) + vec.bias
    )
    torch.testing.assert_close(logits, manual)


def test_ensemble_latent_selects_one_head():
    torch.manual_seed(0)
    fam = EnsemblePolicy(SPEC, 4, heads=5, head_init=1.0)
    z = fam.sample_latent(200)
    assert set(z.sum(1).tolist()) == {1.0} and (z.sum(0) > 0).all()
    k = 3
    onehot = torch.nn.functional.one_hot(torch.tensor([k] * 9), 5).float()
    logits, _ = fam(torch.arange(9), onehot)
    torch.testing.assert_close(logits, fam.pi_heads.view(9, 4, 5)[:, :, k] + fam.pi_bias[k])


def test_entropy_lower_bound_constants_on_a_linear_gaussian_channel():
    """phi = a z + sigma eps with z ~ N(0, 1): with the exact posterior the bound equals I(z; phi) and H[phi]."""
    torch.manual_seed(0)
    a, sigma, n = 2.0, 0.5, 200_000
    z = torch.randn(n, 1)
    phi = a * z + sigma * torch.randn(n, 1)
    post_var = sigma**2 / (a**2 + sigma**2)
    post_mean = a * phi / (a**2 + sigma**2)
    log_q = torch.distributions.Normal(post_mean, math.sqrt(post_var)).log_prob(z).sum(-1)
    b = entropy_lower_bound(z, log_q, phi_dim=1, noise_std=sigma)
    true_mi = 0.5 * math.log(1 + a**2 / sigma**2)
    true_h = 0.5 * math.log(2 * math.pi * math.e * (a**2 + sigma**2))
    assert abs(b["mi"].item() - true_mi) < 0.01
    assert abs(b["entropy"].item() - true_h) < 0.01
    # any other q gives less (Barber-Agakov)
    worse = torch.distributions.Normal(post_mean * 0.8, math.sqrt(post_var) * 1.5).log_prob(z).sum(-1)
    assert entropy_lower_bound(z, worse, phi_dim=1, noise_std=sigma)["mi"] < true_mi - 0.05
    assert gaussian_entropy(3, 2.0) == pytest.approx(3 * 0.5 * math.log(2 * math.pi * math.e * 4))


def test_bound_gradients_reach_the_policy_but_the_inference_fit_does_not():
    torch.manual_seed(0)
    fam = LatentPolicy(SPEC, 4, latent_dim=2)
    torch.nn.init.normal_(fam.inference.head[-1].weight, std=0.1)  # as after a first update
    zq, noise = fam.diversity_inputs(8, 5)
    div = fam.diversity(torch.tensor([0, 1, 2, 3, 4]), zq, noise)
    div["aux_loss"].backward(retain_graph=True)
    assert fam.pi_hyper.grad is None or fam.pi_hyper.grad.abs().sum() == 0
    assert fam.inference.embed.weight.grad.abs().sum() > 0
    fam.zero_grad()
    div["objective"].backward()
    assert fam.pi_hyper.grad.abs().sum() > 0
    assert div["bound"].shape == () and div["mi"] <= gaussian_entropy(2) + 1e-4


def test_inference_net_is_permutation_invariant_over_probes():
    torch.manual_seed(0)
    for spec, obs in ((SPEC, torch.tensor([0, 4, 7])), (ObsSpec("vector", 6), torch.randn(3, 6))):
        q = InferenceNet(spec, 4, latent_dim=2)
        torch.nn.init.normal_(q.head[-1].weight)
        phi = torch.rand(5, 3, 4)
        perm = torch.tensor([2, 0, 1])
        m1, s1 = q(obs, phi)
        m2, s2 = q(obs[perm], phi[:, perm])
        torch.testing.assert_close(m1, m2)
        torch.testing.assert_close(s1, s2)


def test_entropy_bound_and_divergence_are_higher_with_lambda_than_without():
    """Pretrain on one 5x5 task with lambda in {0, 0.2, 1} (two seeds each, one population): every lambda > 0
    ends with a higher learned bound than lambda = 0, and lambda = 1 with a higher policy divergence.

    The bound is *not* monotone between 0.2 and 1 on this problem: over 5 training seeds (initialisation
    ``i + 100 s``, learner seed ``s``; 1 and 2 threads give identical floats) bound(1) < bound(0.2) on 2 of them
    (seed 0: -27.71, -27.18, -27.47). What holds on every seed is the bound of lambda > 0 versus lambda = 0 (margin
    0.16 to 0.79 nats, asserted 0.1) and the divergence of lambda = 1 versus lambda = 0 (ratio 1.43 to 2.05,
    asserted 1.3); the divergence at lambda = 0.2 is only 1.02 times lambda 0's on seed 4, so it is not asserted.
    The values per seed are in the package README (tests that assert a learned direction).
    """
    spec = ObsSpec("index", 25)
    lams = [0.0, 0.2, 1.0]
    fams = []
    for i in range(2 * len(lams)):
        torch.manual_seed(i)
        fams.append(LatentPolicy(spec, 4, latent_dim=2))
    cfg = PPOConfig(num_envs=8, num_steps=16, lr=0.03, probe_states=8, probe_latents=8)
    env = BatchedGridWorld("open5", [(0, 4)], num_envs=len(fams) * 8, start=(2, 2), max_steps=12)
    lam = torch.tensor(lams).repeat_interleave(2)
    out = train_population(fams[0], init_population(fams), env, cfg, 30, lam=lam, seed=0)
    bound = out["bound"][-5:].mean(0).view(3, 2).mean(1)
    assert (bound[1:] > bound[0] + 0.1).all(), bound
    probe = torch.arange(25)
    torch.manual_seed(0)
    div = policy_divergence(fams[0], out["params"], probe, torch.randn(6, 6, 2)).view(3, 2).mean(1)
    assert div[2] > 1.3 * div[0], div
