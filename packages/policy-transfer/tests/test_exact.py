"""Exact measures against brute force: success by enumerating action sequences, coverage by enumerating K-subsets,
visitation diversity on hand cases; the ring task's geometry; the single policy; uniform random starts."""

import itertools
import math

import pytest
import torch
from policy_transfer import (
    BatchedGridWorld,
    LatentPolicy,
    ObsSpec,
    SinglePolicy,
    init_population,
    make_layout,
)
from policy_transfer.exact import (
    coverage_exact,
    distinct_routes,
    exact_success,
    greedy_routes,
    occupancy,
    policy_tables,
    visitation_diversity,
)


def brute_success(probs, table, start, goal, horizon):
    """Sum over all 4^horizon action sequences of their probability, counting those that reach the goal (the
    actions after the goal multiply in the goal's row, which sums to 1 over its continuations)."""
    total = 0.0
    for seq in itertools.product(range(4), repeat=horizon):
        p, s, reached = 1.0, start, False
        for a in seq:
            p *= float(probs[s, a])
            if not reached:
                s = int(table[s, a])
                reached = s == goal
        total += p if reached else 0.0
    return total


def test_exact_success_equals_enumeration_of_action_sequences():
    lay = make_layout("open3")
    table = torch.as_tensor(lay.transitions())
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(3, 9, 4) * 2, -1)  # three random policies
    uniform = torch.full((1, 9, 4), 0.25)
    got = exact_success(torch.cat([probs, uniform]), table, 0, [8, 2, 5], 5)
    for b, pol in enumerate(torch.cat([probs, uniform])):
        for g, goal in enumerate([8, 2, 5]):
            # float32 rows sum to 1 within 1e-7, which the enumeration's continuations multiply in
            assert got[b, g].item() == pytest.approx(brute_success(pol, table, 0, goal, 5), rel=1e-6)
    # a deterministic policy: right, right, down, down reaches (2, 2) in exactly 4 steps, never in 3
    det = torch.zeros(9, 4)
    det[[0, 1], 1] = 1.0
    det[[2, 5], 2] = 1.0
    det[[3, 4, 6, 7, 8], 0] = 1.0
    assert exact_success(det, table, 0, [8], 4).item() == 1.0
    assert exact_success(det, table, 0, [8], 3).item() == 0.0
    with pytest.raises(ValueError, match="also a goal"):
        exact_success(det, table, 0, [0], 3)


def test_exact_success_matches_the_batched_env_by_monte_carlo():
    lay = make_layout("ring")
    table = torch.as_tensor(lay.transitions())
    start, goal = lay.index((2, 1)), lay.index((1, 3))
    exact = exact_success(torch.full((lay.n_cells, 4), 0.25), table, start, [goal], 4).item()
    n = 40_000
    env = BatchedGridWorld("ring", [(1, 3)], num_envs=n, start=(2, 1), max_steps=4)
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(1)
    done = torch.zeros(n, dtype=torch.bool)
    hit = torch.zeros(n, dtype=torch.bool)
    for _ in range(4):
        _, _, term, trunc, _ = env.step(torch.randint(4, (n,), generator=gen))
        hit |= term & ~done
        done |= term | trunc
    # 3 moves (up, right, right), or the same with one bump into a wall or the block (2 ways, 3 places)
    assert exact == pytest.approx((1 / 4) ** 3 + 6 * (1 / 4) ** 4, abs=1e-12)
    se = math.sqrt(exact * (1 - exact) / n)
    assert abs(hit.float().mean().item() - exact) < 5 * se


def test_ring_has_two_equal_routes_and_one_route_targets():
    lay = make_layout("ring")
    assert len(lay.free_cells()) == 12
    d = lay.distances((2, 1))
    assert d[2, 5] == 6 and d[1, 3] == 3 and d[3, 3] == 3
    table = torch.as_tensor(lay.transitions())
    # commit to the top route: up at the start, right along the top row, down at the end
    top = torch.zeros(lay.n_cells, 4)
    top[:, 1] = 1.0
    top[lay.index((2, 1))] = torch.tensor([1.0, 0, 0, 0])
    top[lay.index((1, 5))] = torch.tensor([0, 0, 1.0, 0])
    succ = exact_success(top, table, lay.index((2, 1)), [lay.index((1, 3)), lay.index((3, 3))], 4)
    assert succ.tolist() == [1.0, 0.0]
    assert exact_success(top, table, lay.index((2, 1)), [lay.index((2, 5))], 6).item() == 1.0
    # hedging 50/50 at the start and committing afterwards reaches each one-route target with 0.5 only
    hedge = top.clone()
    hedge[lay.index((2, 1))] = torch.tensor([0.5, 0, 0.5, 0])
    hedge[lay.index((3, 1))] = torch.tensor([0, 1.0, 0, 0])
    succ = exact_success(hedge, table, lay.index((2, 1)), [lay.index((1, 3)), lay.index((3, 3))], 4)
    assert succ.tolist() == [0.5, 0.5]


def test_coverage_exact_equals_the_mean_over_all_k_subsets():
    torch.manual_seed(0)
    success = torch.rand(2, 7, 3)  # runs, latents, targets
    k, thr = 3, 0.6
    got = coverage_exact(success, k, thr)
    for r in range(2):
        subsets = list(itertools.combinations(range(7), k))
        ref = sum((success[r, list(s)] >= thr).any(0).double().mean().item() for s in subsets) / len(subsets)
        assert got[r].item() == pytest.approx(ref, abs=1e-12)
    # eight identical noisy policies that never reach the threshold cover nothing, however lucky an episode
    same = torch.full((1, 8, 4), 0.363)
    assert coverage_exact(same, 8, 0.5).item() == 0.0
    with pytest.raises(ValueError, match="K <= L"):
        coverage_exact(same, 9, 0.5)


def test_visitation_diversity_and_routes_on_hand_cases():
    lay = make_layout("ring")
    table = torch.as_tensor(lay.transitions())
    start, source = lay.index((2, 1)), lay.index((2, 5))
    top = torch.zeros(lay.n_cells, 4)
    top[:, 1] = 1.0
    top[start] = torch.tensor([1.0, 0, 0, 0])
    top[lay.index((1, 5))] = torch.tensor([0, 0, 1.0, 0])
    bottom = torch.zeros(lay.n_cells, 4)
    bottom[:, 1] = 1.0
    bottom[start] = torch.tensor([0, 0, 1.0, 0])
    bottom[lay.index((3, 5))] = torch.tensor([1.0, 0, 0, 0])
    occ = occupancy(torch.stack([top, bottom, top, top]), table, start, source, 12)
    assert occ.sum(-1).tolist() == pytest.approx([1.0] * 4)
    same = visitation_diversity(torch.stack([occ[0], occ[0]]))
    assert same["between"].item() == pytest.approx(0.0, abs=1e-12)
    two = visitation_diversity(torch.stack([occ[0], occ[1]]))
    # 7 visited cells each (6 moves + the start), 2 shared (start, source): I = H(mixture) - H(one) = 5/7 log 2
    assert two["within"].item() == pytest.approx(math.log(7))
    assert two["between"].item() == pytest.approx(5 / 7 * math.log(2))
    routes = greedy_routes(torch.stack([top, bottom, top, top]), table, start, 12).unsqueeze(0)
    assert distinct_routes(routes, source, 4).tolist() == [2.0]
    assert distinct_routes(routes, source, 2).tolist() == [1.5]  # groups (top, bottom) and (top, top)


def test_single_policy_is_one_policy_and_policy_tables_follow_each_run():
    spec = ObsSpec("index", 12)
    torch.manual_seed(0)
    fams = [SinglePolicy(spec, 4) for _ in range(2)]
    with torch.no_grad():
        for f in fams:
            f.pi_base.normal_()
    params = init_population(fams)
    z = fams[0].sample_latent(5)
    assert torch.equal(z, torch.zeros(5, 1))
    probs = policy_tables(fams[0], params, 12, torch.randn(2, 5, 1))  # any latent: the same policy
    torch.testing.assert_close(probs[:, 1:], probs[:, :1].expand(-1, 4, -1, -1))
    torch.testing.assert_close(probs[1, 0], torch.softmax(fams[1].pi_base, -1))
    lat = LatentPolicy(spec, 4, latent_dim=2, hyper_init=1.0)
    p = policy_tables(lat, init_population([lat]), 12, torch.randn(1, 3, 2))
    assert not torch.allclose(p[0, 0], p[0, 1])


def test_twin_random_starts_are_uniform_over_cells_other_than_the_goal():
    env = BatchedGridWorld("open3", [(1, 1)], num_envs=80_000, start=None, max_steps=1)
    obs = env.reset(seed=0)
    freq = torch.bincount(obs, minlength=9).float() / obs.numel()
    assert freq[4] == 0
    others = freq[torch.arange(9) != 4]
    se = math.sqrt(1 / 8 * 7 / 8 / obs.numel())
    assert (others - 1 / 8).abs().max() < 5 * se, others  # the old shift gave the goal's successor 2/9
