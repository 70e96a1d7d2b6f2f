"""The transfer protocol and its metrics.

1. **Pretrain** a population of families on the source task (:func:`train_population`).
2. **Zero-shot**: on every target task, draw K latents per pretrained run and run each for E episodes
   (:func:`zero_shot`): the jumpstart (mean success), the best-of-K success, and **coverage@K** (the fraction of
   target tasks that at least one of the K policies *solves*, i.e. succeeds in at least ``solve_threshold`` of
   its episodes).
3. **Fine-tune** on every target (:func:`train_population` again, one run per (pretrained run, target)):
   ``"sample"`` keeps drawing z from the prior at every episode; ``"select"`` fixes each run to the best of its
   K zero-shot latents (the prior refitted to a point mass). The zero-shot episodes of ``"select"`` count in its
   step budget.
4. **Steps to threshold** (:func:`steps_to_threshold`): the first environment step at which the moving average
   (over ``window`` iterations) of the training success rate reaches ``threshold``; runs that never reach it
   are censored at their budget.

Plus :func:`policy_divergence` (mean pairwise Jensen-Shannon divergence between sampled policies on probe
states). ``bootstrap_ci`` is the core's (:func:`paperkit.claims.bootstrap_ci`), re-exported here because this
module's API documented it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from paperkit.claims import bootstrap_ci

from .policy import PolicyFamily
from .rl import Learner, PPOConfig, evaluate_latents, population_forward, run_count

__all__ = [
    "bootstrap_ci",
    "coverage_at_k",
    "policy_divergence",
    "steps_to_threshold",
    "train_population",
    "visitation",
    "zero_shot",
]


def train_population(
    family: PolicyFamily,
    params: dict[str, torch.Tensor],
    env,
    cfg: PPOConfig,
    iterations: int,
    *,
    lam: float | torch.Tensor = 0.0,
    ent_coef: float | torch.Tensor | None = None,
    sigma: float | torch.Tensor | None = None,
    latent: torch.Tensor | None = None,
    seed: int = 0,
    measure: Callable[[dict], torch.Tensor] | None = None,
    eval_env=None,
    eval_max_steps: int = 0,
    on_iteration: Callable[[int, dict], None] | None = None,
    loop: Callable[[int], object] | None = None,
) -> dict:
    """Train ``P`` runs for ``iterations`` rollouts.

    Returns per-iteration ``[iterations, P]`` tensors: ``success`` (the training episodes' success rate, NaN when
    none ended), ``return``, ``bound``, ``entropy`` and, with ``eval_env`` (a vector env of ``P * E`` copies,
    run-major), ``eval_success`` and ``eval_return``: after every iteration, the success rate and mean return of
    ``E`` fresh episodes per run acting like the training policy (latents from the prior, or the run's fixed latent). Evaluation episodes are
    measurement and cost no training steps. ``measure(params) -> [P]`` (e.g. the exact success of each run's
    policy) is called before the first iteration and after every one: ``measure [iterations + 1, P]``. ``loop(n)`` yields the iteration indices (e.g.
    :meth:`paperkit.Run.steps` for a progress bar and Ctrl-C handling); default ``range(n)``.
    """
    learner = Learner(
        family,
        params,
        env,
        cfg,
        lam=lam,
        ent_coef=ent_coef,
        sigma=sigma,
        latent=latent,
        seed=seed,
        total_iterations=iterations,
    )
    P = learner.P
    success, returns, bound, entropy, evals, measured = [], [], [], [], [], []
    if measure is not None:
        with torch.no_grad():
            measured.append(measure(learner.params))
    for it in (loop or range)(iterations):
        stats = learner.iterate()
        if measure is not None:
            with torch.no_grad():
                measured.append(measure(learner.params))
        if eval_env is not None:
            E = eval_env.num_envs // P
            if latent is None:
                z = family.sample_latent(P * E, learner.generator, learner.device)
            else:
                z = learner.latent.repeat_interleave(E, 0)
            out = evaluate_latents(
                family, learner.params, eval_env, z, max_steps=eval_max_steps, seed=seed * 7919 + it
            )
            stats["eval_success"] = out["success"].view(P, E).mean(1)
            stats["eval_return"] = out["return"].view(P, E).mean(1)
            evals.append(torch.stack([stats["eval_success"], stats["eval_return"]]))
        success.append(stats["success_rate"])
        returns.append(stats["return"])
        bound.append(stats["bound"])
        entropy.append(stats["entropy"])
        if on_iteration is not None:
            on_iteration(it, stats)
    return {
        "params": learner.params,
        "eval_success": torch.stack(evals)[:, 0].cpu() if evals else None,
        "eval_return": torch.stack(evals)[:, 1].cpu() if evals else None,
        "success": torch.stack(success).cpu(),
        "return": torch.stack(returns).cpu(),
        "bound": torch.stack(bound).cpu(),
        "entropy": torch.stack(entropy).cpu(),
        "measure": torch.stack(measured).cpu() if measured else None,
        "steps_per_iteration": learner.steps_per_iteration,
    }


def zero_shot(
    family: PolicyFamily,
    params: dict[str, torch.Tensor],
    make_env: Callable[[list], object],
    targets: Sequence,
    *,
    k: int,
    episodes: int,
    max_steps: int,
    seed: int = 0,
    latents: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Score ``k`` prior latents of every run on every target for ``episodes`` episodes each (or the given
    ``latents [R, T, k, d]``, e.g. an ensemble's distinct heads).

    ``make_env(goals)`` builds a torch vector env with one copy per entry of ``goals`` (copies are run-major:
    run, target, latent, episode). Returns ``success [R, T, K]`` (success rate of each latent), ``latents
    [R, T, K, d]`` and ``steps [R, T]`` (environment steps the scoring used per run and target).
    """
    R, T = run_count(params), len(targets)
    gen = torch.Generator().manual_seed(int(seed))
    if latents is None:
        latents = family.sample_latent(R * T * k, gen).view(R, T, k, -1)
    k = latents.shape[2]
    goals = [targets[t] for _ in range(R) for t in range(T) for _ in range(k) for _ in range(episodes)]
    env = make_env(goals)
    device = next(iter(params.values())).device
    per_copy = (
        latents.unsqueeze(3).expand(R, T, k, episodes, latents.shape[-1]).reshape(-1, latents.shape[-1])
    )
    try:
        out = evaluate_latents(family, params, env, per_copy.to(device), max_steps=max_steps, seed=seed)
    finally:
        if hasattr(env, "close"):
            env.close()
    success = out["success"].view(R, T, k, episodes).mean(-1).cpu()
    steps = out["length"].view(R, T, k * episodes).sum(-1).cpu()
    return {"success": success, "latents": latents, "steps": steps}


def coverage_at_k(success: torch.Tensor, solve_threshold: float = 0.5) -> torch.Tensor:
    """``success [R, T, K]`` -> ``[R]``: the fraction of targets solved by at least one of the K latents."""
    return (success >= solve_threshold).any(-1).float().mean(-1)


def steps_to_threshold(
    success: torch.Tensor,
    steps_per_iteration: int,
    *,
    threshold: float = 0.9,
    window: int = 3,
    offset: torch.Tensor | float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``success [iterations, runs]`` (NaN = no episode ended: counted as 0) -> ``(steps [runs], reached [runs])``.

    ``steps`` is ``offset + steps_per_iteration * (i + 1)`` for the first iteration ``i`` whose trailing mean over
    ``window`` iterations (fewer at the start) reaches ``threshold``; unreached runs get the budget
    ``offset + steps_per_iteration * iterations`` and ``reached = False``.
    """
    s = torch.nan_to_num(success.float(), nan=0.0)
    n = s.shape[0]
    csum = torch.cat([torch.zeros_like(s[:1]), torch.cumsum(s, 0)])  # [n + 1, runs]
    i = torch.arange(n)
    lo = torch.clamp(i - window + 1, min=0)
    moving = (csum[i + 1] - csum[lo]) / (i - lo + 1).float().unsqueeze(1)
    hit = moving >= threshold
    reached = hit.any(0)
    first = torch.where(reached, hit.float().argmax(0), torch.full_like(reached, n - 1, dtype=torch.long))
    steps = torch.as_tensor(offset, dtype=torch.float32) + steps_per_iteration * (first + 1).float()
    return steps, reached


@torch.no_grad()
def visitation(
    family: PolicyFamily,
    params: dict[str, torch.Tensor],
    env,
    latents: torch.Tensor,
    *,
    episodes: int,
    max_steps: int,
    seed: int = 0,
) -> torch.Tensor:
    """Cell visit frequencies of each latent's policy over ``episodes`` first episodes on a batched GridWorld
    whose copies are run-major (``env.num_envs == len(latents) * episodes``): ``[len(latents), n_cells]``."""
    L = latents.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    obs = env.reset(seed=int(seed))
    z = latents.repeat_interleave(episodes, 0)
    counts = torch.zeros(L * episodes, env.n_obs)
    live = torch.ones(L * episodes, dtype=torch.bool)
    rows = torch.arange(L * episodes)
    for _ in range(max_steps):
        counts[rows[live], obs[live]] += 1
        logits, _ = population_forward(family, params, obs, z)
        action = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).view(-1)
        obs, _, terminated, truncated, final = env.step(action)
        ended = terminated | truncated
        counts[rows[live & ended], final[live & ended]] += 1
        live &= ~ended
        if not bool(live.any()):
            break
    counts = counts.view(L, episodes, -1).sum(1)
    return counts / counts.sum(1, keepdim=True)


def policy_divergence(
    family: PolicyFamily, params: dict[str, torch.Tensor], probe_obs: torch.Tensor, latents: torch.Tensor
) -> torch.Tensor:
    """Mean pairwise Jensen-Shannon divergence (nats) between the policies of ``latents [R, K, d]`` on the
    probe states ``probe_obs [m]`` (the same for every run): ``[R]``."""
    R, K, d = latents.shape
    m = probe_obs.shape[0]
    obs = probe_obs.repeat(R * K) if probe_obs.dim() == 1 else probe_obs.repeat(R * K, 1)
    z = latents.to(next(iter(params.values())).device).repeat_interleave(m, 1).reshape(-1, d)
    with torch.no_grad():
        logits, _ = population_forward(family, params, obs, z)
    p = torch.softmax(logits, -1).view(R, K, m, -1)
    a, b = p.unsqueeze(2), p.unsqueeze(1)  # [R, K, 1, m, A], [R, 1, K, m, A]
    mix = 0.5 * (a + b)

    def kl(x, y):
        return (x * (torch.log(x.clamp_min(1e-12)) - torch.log(y.clamp_min(1e-12)))).sum(-1)

    js = 0.5 * kl(a, mix) + 0.5 * kl(b, mix)  # [R, K, K, m]
    off = ~torch.eye(K, dtype=torch.bool)
    return js.mean(-1)[:, off].mean(-1).cpu()
