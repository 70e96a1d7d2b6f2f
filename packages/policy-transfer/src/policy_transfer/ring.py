"""The diversity experiment: a task where distinct routes differ from action noise, measured exactly.

Task (``layout="ring"``): a ring of 12 cells around a 1x3 block, start (2, 1), source goal (2, 5), two equal
6-step routes (top row, bottom row), source horizon 12. Targets (1, 3) and (3, 3) lie on one route each and must be
reached within 4 steps (the 3-step route plus one step of slack). A policy that commits to a route reaches one of
them with probability 1; a policy that hedges (50/50 at the first step) reaches each with at most about 0.5; so
coverage@K at a success threshold of 0.8 is earned only by *different* committed policies, never by noise.

Arms, all pretrained on the source for the same steps, each a population of independent seeds:

- ``distribution``: :class:`~policy_transfer.LatentPolicy` with the entropy bound at lambda*;
- ``lambda0``: the same family at lambda = 0 (z-conditioned; diverse only through its random initialisation);
- ``single``: :class:`~policy_transfer.SinglePolicy` (no latent) with the default action-entropy bonus;
- ``entropy``: the single policy with the action-entropy bonus ent* (the maximum-entropy baseline);
- ``ensemble``: K heads, each head one policy, scored as its K distinct heads.

Protocol: lambda* and ent* are chosen on *development* seeds (``ring_dev_seeds``, seeds disjoint from the test
seeds): the candidate with the highest mean exact coverage@K among those whose mean exact source success is at
least ``ring_min_source`` (else the candidate with the best source success). Every arm is then trained and
measured on fresh test seeds. Measures (exact, :mod:`policy_transfer.exact`, on ``ring_latents`` prior draws per
seed): source success, coverage@K of the targets, distinct greedy routes among K latents, and the visitation
entropy within a latent vs between latents (mutual information of latent and visited cell).
"""

from __future__ import annotations

import torch

from .baselines import EnsemblePolicy, SinglePolicy
from .distribution import LatentPolicy
from .exact import (
    coverage_exact,
    distinct_routes,
    exact_success,
    greedy_routes,
    occupancy,
    policy_tables,
    visitation_diversity,
)
from .gridworld import BatchedGridWorld, GridError, make_layout
from .policy import ObsSpec
from .rl import PPOConfig, init_population
from .transfer import train_population

ARMS = ("distribution", "lambda0", "single", "entropy", "ensemble")
BASELINES = ARMS[1:]


def ring_tasks(cfg) -> dict:
    layout = make_layout(cfg.ring_layout)
    start = layout.check_cell(cfg.ring_start, "--ring-start")
    source = layout.check_cell(cfg.ring_source, "--ring-source")
    t = list(cfg.ring_targets)
    if len(t) % 2 or not t:
        raise GridError(f"--ring-targets needs (row, col) pairs, got {tuple(t)!r}")
    targets = [layout.check_cell(t[i : i + 2], "--ring-targets") for i in range(0, len(t), 2)]
    if len({start, source, *targets}) < 2 + len(targets):
        raise GridError("--ring-start, --ring-source and --ring-targets must all be different cells")
    return {"layout": layout, "start": start, "source": source, "targets": targets}


def _ppo(cfg, *, diversity: bool) -> PPOConfig:
    return PPOConfig(
        algo=cfg.algo,
        num_envs=cfg.ring_num_envs,
        num_steps=cfg.num_steps,
        lr=cfg.lr,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        update_epochs=cfg.update_epochs,
        num_minibatches=cfg.num_minibatches,
        clip_coef=cfg.clip_coef,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        probe_states=cfg.probe_states,
        probe_latents=cfg.probe_latents if diversity else 0,
    )


def _make(kind: str, spec: ObsSpec, cfg):
    if kind == "latent":
        return LatentPolicy(
            spec, 4, latent_dim=cfg.latent_dim, hyper_init=cfg.hyper_init, probe_noise=cfg.probe_noise
        )
    if kind == "single":
        return SinglePolicy(spec, 4)
    return EnsemblePolicy(spec, 4, heads=cfg.select_k, head_init=cfg.hyper_init)


def pretrain(cfg, run, key: str, kind: str, lam: list[float], ent: list[float], seed: int, loop=None) -> dict:
    """Train one population on the source: run ``i`` with ``lam[i]`` and ``ent[i]``; returns its parameters."""
    tasks = ring_tasks(cfg)
    layout = tasks["layout"]
    spec = ObsSpec("index", layout.n_cells)
    fams = []
    for i in range(len(lam)):
        torch.manual_seed(seed + 7919 * i)
        fams.append(_make(kind, spec, cfg))
    env = BatchedGridWorld(
        layout,
        [tasks["source"]],
        len(fams) * cfg.ring_num_envs,
        start=tasks["start"],
        max_steps=cfg.ring_horizon,
    )
    its = max(1, -(-int(cfg.ring_pretrain_steps) // (cfg.ring_num_envs * cfg.num_steps)))
    out = train_population(
        fams[0],
        init_population(fams),
        env,
        _ppo(cfg, diversity=kind == "latent"),
        its,
        lam=torch.tensor(lam),
        ent_coef=torch.tensor(ent),
        seed=seed,
        loop=loop,
        on_iteration=lambda it, st: run.log(
            phase=key,
            iteration=it + 1,
            steps=(it + 1) * cfg.ring_num_envs * cfg.num_steps,
            success=float(torch.nan_to_num(st["success_rate"]).mean()),
            bound=float(st["bound"].mean()),
        ),
    )
    return {"family": fams[0], "params": {k: v.detach() for k, v in out["params"].items()}}


def measure(cfg, family, params: dict, seed: int) -> dict[str, list[float]]:
    """Exact measures of every run of a population (lists over runs)."""
    tasks = ring_tasks(cfg)
    layout = tasks["layout"]
    table = torch.as_tensor(layout.transitions())
    R = next(iter(params.values())).shape[0]
    if isinstance(family, EnsemblePolicy):
        latents = family.heads().expand(R, -1, -1)
    else:
        gen = torch.Generator().manual_seed(int(seed))
        latents = family.sample_latent(R * cfg.ring_latents, gen).view(R, cfg.ring_latents, -1)
    k = min(cfg.select_k, latents.shape[1])
    probs = policy_tables(family, params, layout.n_cells, latents)  # [R, L, S, A]
    start, source = layout.index(tasks["start"]), layout.index(tasks["source"])
    goals = [layout.index(t) for t in tasks["targets"]]
    src = exact_success(probs, table, start, [source], cfg.ring_horizon)[..., 0]  # [R, L]
    tgt = exact_success(probs, table, start, goals, cfg.ring_target_horizon)  # [R, L, T]
    occ = occupancy(probs, table, start, source, cfg.ring_horizon)  # [R, L, S]
    vis = visitation_diversity(occ)
    routes = greedy_routes(probs, table, start, cfg.ring_horizon)
    ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)  # [R, L, S]
    w = occ.float()
    return {
        "source_success": src.mean(1).tolist(),
        "coverage": coverage_exact(tgt, k, cfg.ring_threshold).tolist(),
        "target_success": tgt.mean(1).mean(-1).tolist(),
        "routes": distinct_routes(routes, source, k).tolist(),
        "visits_between": vis["between"].tolist(),
        "visits_within": vis["within"].tolist(),
        "action_entropy": ((ent * w).sum(-1) / w.sum(-1)).mean(1).tolist(),
    }


def choose(candidates: list[float], cover: torch.Tensor, source: torch.Tensor, min_source: float) -> dict:
    """The candidate with the best mean coverage among those with mean source success >= ``min_source``
    (else the one with the best source success). ``cover``/``source``: ``[candidates, seeds]``."""
    c, s = cover.mean(1), source.mean(1)
    ok = s >= min_source
    i = int(torch.where(ok, c, torch.full_like(c, -1.0)).argmax()) if bool(ok.any()) else int(s.argmax())
    return {
        "chosen": candidates[i],
        "candidates": list(candidates),
        "coverage": c.tolist(),
        "source_success": s.tolist(),
    }


def _split(values: list[float], groups: int) -> torch.Tensor:
    return torch.tensor(values).view(groups, -1)


def run_ring(cfg, run, phase_seed, loop) -> dict:
    """The whole experiment: development selection, then every arm on the test seeds."""
    S, D = cfg.ring_seeds, cfg.ring_dev_seeds
    lams, ents = list(cfg.ring_lambdas), list(cfg.ring_ent_coefs)

    def dev():
        key = "ring/dev"
        seed = phase_seed(cfg.seed, key)
        lat = pretrain(
            cfg,
            run,
            key,
            "latent",
            [x for x in lams for _ in range(D)],
            [cfg.ent_coef] * len(lams) * D,
            seed,
            loop(f"{key}/latent"),
        )
        m_lat = measure(cfg, lat["family"], lat["params"], seed + 1)
        one = pretrain(
            cfg,
            run,
            key,
            "single",
            [0.0] * len(ents) * D,
            [x for x in ents for _ in range(D)],
            seed + 2,
            loop(f"{key}/single"),
        )
        m_one = measure(cfg, one["family"], one["params"], seed + 3)
        return {
            "lambda": choose(
                lams,
                _split(m_lat["coverage"], len(lams)),
                _split(m_lat["source_success"], len(lams)),
                cfg.ring_min_source,
            ),
            "ent_coef": choose(
                ents,
                _split(m_one["coverage"], len(ents)),
                _split(m_one["source_success"], len(ents)),
                cfg.ring_min_source,
            ),
        }

    selection = run.phase("ring/dev", dev)
    lam, ent = selection["lambda"]["chosen"], selection["ent_coef"]["chosen"]

    def test():
        key = "ring/test"
        seed = phase_seed(cfg.seed, key)
        out = {}
        lat = pretrain(
            cfg,
            run,
            key,
            "latent",
            [lam] * S + [0.0] * S,
            [cfg.ent_coef] * 2 * S,
            seed,
            loop(f"{key}/latent"),
        )
        m = measure(cfg, lat["family"], lat["params"], seed + 1)
        out["distribution"] = {k: v[:S] for k, v in m.items()}
        out["lambda0"] = {k: v[S:] for k, v in m.items()}
        one = pretrain(
            cfg,
            run,
            key,
            "single",
            [0.0] * 2 * S,
            [cfg.ent_coef] * S + [ent] * S,
            seed + 2,
            loop(f"{key}/single"),
        )
        m = measure(cfg, one["family"], one["params"], seed + 3)
        out["single"] = {k: v[:S] for k, v in m.items()}
        out["entropy"] = {k: v[S:] for k, v in m.items()}
        ens = pretrain(
            cfg, run, key, "ensemble", [0.0] * S, [cfg.ent_coef] * S, seed + 4, loop(f"{key}/ensemble")
        )
        out["ensemble"] = measure(cfg, ens["family"], ens["params"], seed + 5)
        return out

    arms = run.phase("ring/test", test)
    return {"selection": selection, "lambda": lam, "ent_coef": ent, "arms": arms}


def ring_claims(cfg, res: dict, run) -> dict:
    """Coverage@K of the distribution against every baseline (Welch intervals over independent seeds), and the
    distribution's behavioural diversity against the lambda = 0 family."""
    from paperkit.claims import interval

    arms = res["arms"]
    k, thr = cfg.select_k, cfg.ring_threshold
    names = {
        "entropy": f"single policy + entropy bonus {res['ent_coef']:g}",
        "single": "single policy (no z)",
        "ensemble": f"ensemble of {k} heads",
        "lambda0": "latent family at lambda 0",
    }
    for arm in ("entropy", "single", "ensemble", "lambda0"):
        run.claim_difference(
            f"ring_coverage_beats_{arm}",
            f"ring: exact coverage@{k} of the two one-route targets (success >= {thr:g} within "
            f"{cfg.ring_target_horizon} steps), distribution (lambda {res['lambda']:g}) minus {names[arm]}",
            method=arms["distribution"]["coverage"],
            control=arms[arm]["coverage"],
            control_name=names[arm],
            op=">",
            threshold=0.0,
            paired=False,
        )
    run.claim_difference(
        "ring_visits_differ_between_latents",
        "ring: mutual information between latent and visited cell (nats, exact visitation on the source), "
        "distribution minus the lambda-0 family",
        method=arms["distribution"]["visits_between"],
        control=arms["lambda0"]["visits_between"],
        control_name="latent family at lambda 0",
        op=">",
        threshold=0.0,
        paired=False,
    )
    table = {}
    for arm, m in arms.items():
        row = {}
        for metric, values in m.items():
            iv = interval(values)
            row[metric] = {"mean": iv["mean"], "lo": iv["lo"], "hi": iv["hi"]}
        row["counts"] = bool(row["source_success"]["mean"] >= cfg.ring_min_source)
        table[arm] = row
    return table


__all__ = ["ARMS", "choose", "measure", "pretrain", "ring_claims", "ring_tasks", "run_ring"]
