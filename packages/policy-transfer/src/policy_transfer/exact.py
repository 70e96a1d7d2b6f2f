"""Exact measures on the tabular GridWorld: what a policy *is*, not what a few of its episodes happened to do.

On a GridWorld with cell observations every policy is a table ``pi[s, a]``, so the probability that it reaches a
goal within ``H`` steps is a finite-horizon dynamic programme, with no sampling:

    d_0 = onehot(start),   d_{t+1}(s') = sum_{s, a} d_t(s) pi(a | s) [next(s, a) = s'],
    success += d_{t+1}(goal),   d_{t+1}(goal) = 0        (the goal terminates)

(:func:`exact_success`, vectorised over policies and goals). On top of it:

- :func:`coverage_exact`: coverage@K as the probability that at least one of K policies drawn *without replacement*
  from ``L`` sampled latents has exact success ``>= threshold`` on a target, averaged over targets. For a target
  solved by ``n`` of the ``L`` latents this is ``1 - C(L - n, K) / C(L, K)``: the mean over *all* K-subsets of the
  L latents, so the only randomness left is which L latents were drawn from the prior. K identical policies score
  exactly the fraction of targets their one policy solves; noisy policies get no credit for lucky episodes.
- :func:`occupancy`: the expected visits of every cell within the horizon (the same programme, summed), and
  :func:`visitation_diversity`: the entropy of the visitation distribution *within* a latent and the mutual
  information between latent and visited cell (entropy of the mixture minus the mean entropy): how much of the
  spread of behaviour comes from different policies rather than from each policy's own noise.
- :func:`greedy_routes` and :func:`distinct_routes`: the cell sequence of each policy's most likely action from
  the start, and how many distinct ones K latents give.
"""

from __future__ import annotations

import math

import torch

from .policy import PolicyFamily
from .rl import population_forward, run_count


@torch.no_grad()
def policy_tables(
    family: PolicyFamily, params: dict[str, torch.Tensor], n_cells: int, latents: torch.Tensor
) -> torch.Tensor:
    """``pi(a | s, z)`` on every cell for ``latents [R, L, d]`` (run ``r`` with its own parameters):
    ``[R, L, n_cells, A]``."""
    R, L, d = latents.shape
    if run_count(params) != R:
        raise ValueError(f"{R} latent sets for {run_count(params)} runs")
    device = next(iter(params.values())).device
    obs = torch.arange(n_cells, device=device).repeat(R * L)
    z = latents.to(device).repeat_interleave(n_cells, 1).reshape(-1, d)
    logits, _ = population_forward(family, params, obs, z)
    return torch.softmax(logits.float(), -1).view(R, L, n_cells, -1).cpu()


def _step_matrix(probs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``probs [B, S, A]``, ``table [S, A]`` next cells -> transition matrices ``[B, S, S]``."""
    B, S, A = probs.shape
    m = torch.zeros(B, S, S, dtype=probs.dtype)
    return m.scatter_add_(2, table.unsqueeze(0).expand(B, S, A), probs)


def _programme(probs, table, start, goals, horizon):
    """Shared finite-horizon pass: ``success [B, G]`` and expected visits ``[B, G, S]`` (start included, the
    goal's terminal visit included)."""
    probs = torch.as_tensor(probs, dtype=torch.float64)
    table = torch.as_tensor(table, dtype=torch.long)
    goals = torch.as_tensor(goals, dtype=torch.long).view(-1)
    B, S, _ = probs.shape
    G = goals.shape[0]
    if bool((goals == int(start)).any()):
        raise ValueError(f"start cell {int(start)} is also a goal")
    step = _step_matrix(probs, table)
    d = torch.zeros(B, G, S, dtype=torch.float64)
    d[:, :, int(start)] = 1.0
    visits = d.clone()
    success = torch.zeros(B, G, dtype=torch.float64)
    rows = torch.arange(G)
    for _ in range(int(horizon)):
        d = torch.bmm(d, step)
        hit = d[:, rows, goals]
        success += hit
        visits += d
        d[:, rows, goals] = 0.0
    return success, visits


def exact_success(probs: torch.Tensor, table: torch.Tensor, start: int, goals, horizon: int) -> torch.Tensor:
    """Probability that each policy ``probs [..., S, A]`` reaches each goal (cell indices ``goals [G]``) from
    ``start`` within ``horizon`` steps on the deterministic transition ``table [S, A]``: ``[..., G]`` (float64)."""
    lead = probs.shape[:-2]
    flat = probs.reshape(-1, *probs.shape[-2:])
    success, _ = _programme(flat, table, start, goals, horizon)
    return success.view(*lead, -1)


def occupancy(probs: torch.Tensor, table: torch.Tensor, start: int, goal: int, horizon: int) -> torch.Tensor:
    """Visitation distribution of each policy ``probs [..., S, A]`` within ``horizon`` steps of an episode that
    ends at ``goal``: expected visits per cell, normalised to sum to 1: ``[..., S]``."""
    lead = probs.shape[:-2]
    flat = probs.reshape(-1, *probs.shape[-2:])
    _, visits = _programme(flat, table, start, [goal], horizon)
    v = visits[:, 0]
    return (v / v.sum(-1, keepdim=True)).view(*lead, -1)


def visitation_diversity(occ: torch.Tensor) -> dict[str, torch.Tensor]:
    """``occ [..., L, S]`` (visitation distributions of L latents) -> ``within`` (mean entropy of one latent's
    visits, nats), ``mixture`` (entropy of the L latents' mixture) and ``between`` (their difference: the mutual
    information between the latent and the visited cell, 0 when every latent visits alike), each ``[...]``."""

    def ent(p):
        return -(p * torch.log(p.clamp_min(1e-300))).sum(-1)

    within = ent(occ).mean(-1)
    mixture = ent(occ.mean(-2))
    return {"within": within, "mixture": mixture, "between": mixture - within}


def coverage_exact(success: torch.Tensor, k: int, threshold: float) -> torch.Tensor:
    """``success [..., L, T]`` (exact success of L latents on T targets) -> ``[...]``: the mean over targets of the
    probability that a K-subset of the L latents, drawn uniformly without replacement, contains a latent with
    success ``>= threshold``."""
    L = success.shape[-2]
    if not 1 <= k <= L:
        raise ValueError(f"coverage@K needs 1 <= K <= L = {L}, got K = {k}")
    solved = (success >= threshold).sum(-2)  # [..., T]
    total = math.comb(L, k)
    miss = torch.tensor([math.comb(L - n, k) / total for n in range(L + 1)], dtype=torch.float64)
    return (1.0 - miss[solved]).mean(-1)


def greedy_routes(probs: torch.Tensor, table: torch.Tensor, start: int, horizon: int) -> torch.Tensor:
    """The cells visited by acting with each policy's most likely action (first on ties) from ``start``:
    ``[..., horizon + 1]`` cell indices."""
    table = torch.as_tensor(table, dtype=torch.long)
    best = probs.argmax(-1)  # [..., S]
    cell = torch.full(best.shape[:-1], int(start), dtype=torch.long)
    route = [cell]
    for _ in range(int(horizon)):
        cell = table[cell, best.gather(-1, cell.unsqueeze(-1)).squeeze(-1)]
        route.append(cell)
    return torch.stack(route, -1)


def distinct_routes(routes: torch.Tensor, goal: int, k: int) -> torch.Tensor:
    """``routes [R, L, H + 1]`` -> ``[R]``: the mean number of distinct greedy routes (cut where they reach
    ``goal``) among consecutive groups of ``k`` latents."""
    R, L, n = routes.shape
    if not 1 <= k <= L:
        raise ValueError(f"distinct routes need 1 <= K <= L = {L}, got K = {k}")
    reached = torch.cumsum((routes == int(goal)).long(), -1)
    cut = torch.where(
        (reached > 0) & (torch.cat([reached[..., :1] * 0, reached[..., :-1]], -1) > 0), -1, routes
    )
    out = torch.zeros(R, dtype=torch.float64)
    groups = L // k
    for r in range(R):
        counts = [len({tuple(x) for x in cut[r, g * k : (g + 1) * k].tolist()}) for g in range(groups)]
        out[r] = sum(counts) / groups
    return out


__all__ = [
    "coverage_exact",
    "distinct_routes",
    "exact_success",
    "greedy_routes",
    "occupancy",
    "policy_tables",
    "visitation_diversity",
]
