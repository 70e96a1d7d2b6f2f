"""The trainer's two experiments, phase by phase (each phase is cached by the run folder for ``--resume``).

GridWorld (fully observable, tabular): every condition's runs form one population, trained in one process.

- ``grid/pretrain/latent``: the distribution (lambda > 0) and the single policy (lambda = 0), seeds x 2 runs;
  ``grid/pretrain/bayes`` and ``grid/pretrain/ensemble``: the parameter-space and ensemble baselines.
- ``grid/transfer/COND``: zero-shot scoring of K latents on every target (coverage@K, jumpstart), then
  fine-tuning one run per (seed, target) with the condition's transfer mode; steps to threshold.
- ``grid/scratch``: a fresh single policy per (seed, target).

MiniGrid (partially observable, MLP over the 7x7 egocentric view): pretrain the distribution on the source goal,
score K latents on the moved goal, fine-tune the best; the same budget from scratch.

Every phase derives its seeds from ``cfg.seed`` and its own name, so a phase rerun after an interruption repeats
itself exactly.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch

from .arms import Arm, load_arms, ppo_config, pretrain, save_arms
from .config import CONDITIONS
from .distribution import LatentPolicy
from .envs import make_vector_env
from .exact import coverage_exact, exact_success, policy_tables
from .gridworld import ENV_ID, BatchedGridWorld, GridError, make_layout
from .policy import ObsSpec
from .rl import PPOConfig, init_population, repeat_population
from .transfer import (
    bootstrap_ci,
    coverage_at_k,
    policy_divergence,
    steps_to_threshold,
    train_population,
    visitation,
    zero_shot,
)

GROUP = {"distribution-sample": "distribution"}


def phase_seed(seed: int, name: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


# -- GridWorld ---------------------------------------------------------------------------------------------


def grid_tasks(cfg) -> dict:
    """Layout, start, source goal, near targets (shortest-path distance in ``grid_near``) and the far goal."""
    layout = make_layout(cfg.grid_layout)
    start = layout.check_cell(cfg.grid_start, "--grid-start")
    source = layout.check_cell(cfg.grid_source, "--grid-source")
    far = layout.check_cell(cfg.grid_far, "--grid-far")
    if len({start, source, far}) < 3:
        raise GridError("--grid-start, --grid-source and --grid-far must be three different cells")
    dist = layout.distances(source)
    lo, hi = cfg.grid_near
    near = [c for c in layout.free_cells() if lo <= dist[c] <= hi and c not in (start, far)]
    if not near:
        raise GridError(f"no free cell at distance {lo}..{hi} from the source goal {source}")
    return {
        "layout": layout,
        "start": start,
        "source": source,
        "near": near,
        "far": far,
        "targets": near + [far],
    }


def grid_arms(cfg, conds) -> list[Arm]:
    """The open room's pretrained conditions as arms ("single" is the lambda-0 latent family here)."""
    table = {
        "distribution": Arm("distribution", "latent", lam=cfg.lam),
        "single": Arm("single", "latent", lam=0.0),
        "bayes": Arm("bayes", "bayes", lam=cfg.bayes_lambda),
        "ensemble": Arm("ensemble", "ensemble"),
    }
    names = [GROUP.get(c, c) for c in conds if c != "scratch"]
    return [table[n] for n in dict.fromkeys(names)]


def _loop(run, desc: str) -> Callable[[int], object]:
    return lambda n: run.steps(n, desc=desc)


def _iterations(steps: int, cfg) -> int:
    return max(1, -(-int(steps) // (cfg.num_envs * cfg.num_steps)))


def _save_params(run, key: str, params: dict) -> None:
    run.checkpoint(key).save(0, {"params": {k: v.detach() for k, v in params.items()}})


def _load_params(run, key: str) -> dict:
    _, weights, _ = run.checkpoint(key).load(restore_rng=False)
    return {k: v.clone() for k, v in weights["params"].items()}


def grid_pretrain(cfg, run, conds: list[str]) -> dict:
    """Pretrain every pretrained condition on the source goal (the one loop, :func:`arms.pretrain`); saves the
    parameters of each arm under the phase key."""
    tasks = grid_tasks(cfg)
    key = "grid/pretrain"
    pre = pretrain(
        cfg,
        run,
        key,
        grid_arms(cfg, conds),
        cfg.seeds,
        layout=tasks["layout"],
        start=tasks["start"],
        goal=tasks["source"],
        horizon=cfg.grid_max_steps,
        num_envs=cfg.num_envs,
        steps=cfg.pretrain_steps,
        seed=phase_seed(cfg.seed, key),
        loop=lambda desc: _loop(run, desc),
    )
    save_arms(run, key, pre)
    return {
        name: {k: p[k] for k in ("success_curve", "final_success", "final_bound", "steps_per_iteration")}
        for name, p in pre.items()
    }


def grid_transfer(cfg, run, cond: str) -> dict:
    """Zero-shot scoring and fine-tuning of one pretrained condition on every target."""
    tasks = grid_tasks(cfg)
    layout, targets, S, T = tasks["layout"], tasks["targets"], cfg.seeds, len(tasks["targets"])
    n_near = len(tasks["near"])
    key = f"grid/transfer/{cond}"
    seed = phase_seed(cfg.seed, key)
    spec = ObsSpec("index", layout.n_cells)
    arm, params = load_arms(run, "grid/pretrain")[GROUP.get(cond, cond)]
    family = arm.resolve(cfg).family(spec, 4, cfg)
    H = cfg.grid_max_steps

    def make_env(goals):
        return BatchedGridWorld(layout, goals, start=tasks["start"], max_steps=H)

    zs = zero_shot(
        family,
        params,
        make_env,
        targets,
        k=cfg.select_k,
        episodes=cfg.select_episodes,
        max_steps=H,
        seed=seed,
    )
    coverage = coverage_at_k(zs["success"][:, :n_near], cfg.solve_threshold)
    probe = torch.tensor([layout.index(c) for c in layout.free_cells()])
    gen = torch.Generator().manual_seed(seed + 1)
    div_latents = family.sample_latent(S * cfg.select_k, gen).view(S, cfg.select_k, -1)
    divergence = policy_divergence(family, params, probe, div_latents)
    # exact zero-shot success of L prior draws (ensemble: its K distinct heads) on the near targets
    ex_latents = arm.latents(family, S, cfg.ring_latents, gen)
    probs = policy_tables(family, params, layout.n_cells, ex_latents)
    near_idx = [layout.index(c) for c in tasks["near"]]
    exact = exact_success(
        probs, torch.as_tensor(layout.transitions()), layout.index(tasks["start"]), near_idx, H
    )
    coverage_ex = coverage_exact(exact, min(cfg.select_k, ex_latents.shape[1]), cfg.solve_threshold)
    # what K sampled policies of the first seed do on the source task (for the figure)
    first_run = {k: v[:1] for k, v in params.items()}
    vis_env = BatchedGridWorld(layout, [tasks["source"]], cfg.select_k * 8, start=tasks["start"], max_steps=H)
    visits = visitation(family, first_run, vis_env, div_latents[0], episodes=8, max_steps=H, seed=seed + 3)
    mode = "sample" if cond == "distribution-sample" else cfg.transfer_mode
    runs = torch.arange(S).repeat_interleave(T)
    ft_params = repeat_population(params, runs)
    if mode == "select":
        best = zs["success"].argmax(-1)  # [S, T], first best on ties
        latent = zs["latents"][torch.arange(S)[:, None], torch.arange(T)[None], best].reshape(S * T, -1)
        offset = zs["steps"].reshape(-1)
    else:
        latent, offset = None, torch.zeros(S * T)
    goals = [targets[t] for _ in range(S) for t in range(T)]
    result = _finetune(cfg, run, key, family, ft_params, layout, tasks["start"], goals, latent, seed, offset)
    jump = zs["success"][:, :n_near].mean((1, 2))
    best_k = zs["success"][:, :n_near].max(-1).values.mean(1)
    return {
        "mode": mode,
        "coverage": coverage.tolist(),
        "coverage_exact": coverage_ex.tolist(),
        "exact_success": exact.mean((1, 2)).tolist(),
        "jumpstart": jump.tolist(),
        "best_of_k": best_k.tolist(),
        "far_zero_shot": zs["success"][:, n_near:].mean((1, 2)).tolist(),
        "divergence": divergence.tolist(),
        "zero_shot_steps": zs["steps"].tolist(),
        "source_visits": visits.view(-1, layout.height, layout.width).tolist(),
        **result,
    }


def _finetune(cfg, run, key, family, params, layout, start, goals, latent, seed, offset) -> dict:
    """Fine-tune ``len(goals)`` runs (run-major over seeds, then targets); curves and steps to threshold."""
    S, T = cfg.seeds, len(goals) // cfg.seeds
    H, E = cfg.grid_max_steps, cfg.eval_episodes
    env = BatchedGridWorld(layout, [g for g in goals for _ in range(cfg.num_envs)], start=start, max_steps=H)
    eval_env = BatchedGridWorld(layout, [g for g in goals for _ in range(E)], start=start, max_steps=H)
    its = _iterations(cfg.finetune_steps, cfg)

    def log(it: int, stats: dict) -> None:
        ev = stats["eval_success"].view(S, T)
        run.log(
            phase=key,
            iteration=it + 1,
            steps=(it + 1) * cfg.num_envs * cfg.num_steps,
            eval_success_near=float(ev[:, :-1].mean()),
            eval_success_far=float(ev[:, -1].mean()),
        )

    out = train_population(
        family,
        params,
        env,
        ppo_config(cfg, cfg.num_envs, diversity=cfg.finetune_lambda > 0),
        its,
        lam=cfg.finetune_lambda,
        latent=latent,
        seed=seed + 2,
        eval_env=eval_env,
        eval_max_steps=H,
        on_iteration=log,
        loop=_loop(run, key),
    )
    steps, reached = steps_to_threshold(
        out["eval_success"],
        out["steps_per_iteration"],
        threshold=cfg.success_threshold,
        window=cfg.success_window,
        offset=offset,
    )
    curve = out["eval_success"].view(its, S, T)
    return {
        "steps_per_iteration": out["steps_per_iteration"],
        "offset": offset.view(S, T).tolist(),
        "steps": steps.view(S, T).tolist(),
        "reached": reached.view(S, T).tolist(),
        "budget": out["steps_per_iteration"] * its,
        "curve_near": curve[:, :, :-1].mean(-1).T.tolist(),  # [S][iterations]
        "curve_far": curve[:, :, -1].T.tolist(),
    }


def grid_scratch(cfg, run) -> dict:
    tasks = grid_tasks(cfg)
    layout, targets, S, T = tasks["layout"], tasks["targets"], cfg.seeds, len(tasks["targets"])
    key = "grid/scratch"
    seed = phase_seed(cfg.seed, key)
    spec = ObsSpec("index", layout.n_cells)
    fams = []
    for i in range(S * T):
        torch.manual_seed(seed + 7919 * i)
        fams.append(Arm("scratch", "latent").family(spec, 4, cfg))
    params = init_population(fams)
    goals = [targets[t] for _ in range(S) for t in range(T)]
    return {
        "mode": "scratch",
        **_finetune(
            cfg, run, key, fams[0], params, layout, tasks["start"], goals, None, seed, torch.zeros(S * T)
        ),
    }


def summarise_grid(cfg, res: dict) -> dict:
    """Per-condition means and bootstrap intervals over seeds (near targets averaged within a seed)."""
    out = {}
    for cond, r in res.items():
        steps = np.array(r["steps"])  # [S, T]
        reached = np.array(r["reached"], dtype=float)
        row = {
            "near_steps": bootstrap_ci(steps[:, :-1].mean(1), n=cfg.bootstrap, seed=cfg.seed),
            "far_steps": bootstrap_ci(steps[:, -1], n=cfg.bootstrap, seed=cfg.seed),
            "near_reached": float(reached[:, :-1].mean()),
            "far_reached": float(reached[:, -1].mean()),
            "budget": r["budget"],
        }
        for metric in (
            "coverage",
            "coverage_exact",
            "exact_success",
            "jumpstart",
            "best_of_k",
            "divergence",
            "far_zero_shot",
        ):
            if metric in r:
                row[metric] = bootstrap_ci(r[metric], n=cfg.bootstrap, seed=cfg.seed)
        out[cond] = row
    return out


# -- MiniGrid ----------------------------------------------------------------------------------------------


def mg_task(cfg, goal) -> dict:
    """Keyword arguments of the MiniGrid task with the goal at ``goal`` (x, y)."""
    from .envs import MOVED_GOAL_ID, EnvError, known_ids

    if cfg.mg_env not in known_ids() or not (
        cfg.mg_env == MOVED_GOAL_ID or cfg.mg_env.startswith("MiniGrid-")
    ):
        raise EnvError(
            f"unknown MiniGrid environment id {cfg.mg_env!r}; known: {MOVED_GOAL_ID}, MiniGrid-*-v0"
        )
    task: dict = {"goal_pos": tuple(int(v) for v in goal)}
    if cfg.mg_env == MOVED_GOAL_ID:
        task["size"] = cfg.mg_size
    elif cfg.mg_env != "MiniGrid-FourRooms-v0":
        raise EnvError(
            f"the goal of {cfg.mg_env} cannot be moved; use {MOVED_GOAL_ID} or MiniGrid-FourRooms-v0"
        )
    if cfg.mg_max_steps:
        task["max_steps"] = cfg.mg_max_steps
    return task


def _mg_env(cfg, goal, n: int):
    return make_vector_env(cfg.mg_env, n, n_actions=cfg.mg_actions, **mg_task(cfg, goal))


def _mg_ppo(cfg, *, diversity: bool) -> PPOConfig:
    return PPOConfig(
        algo=cfg.algo,
        num_envs=cfg.mg_num_envs,
        num_steps=cfg.mg_num_steps,
        lr=cfg.mg_lr,
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


def _mg_families(cfg, spec, count: int, seed: int) -> list[LatentPolicy]:
    out = []
    for i in range(count):
        torch.manual_seed(seed + 7919 * i)
        out.append(
            LatentPolicy(
                spec,
                cfg.mg_actions,
                latent_dim=cfg.latent_dim,
                hyper_init=cfg.hyper_init,
                probe_noise=cfg.probe_noise,
                z_in_trunk=True,
            )
        )
    return out


def _mg_max_steps(cfg) -> int:
    from .envs import make_minigrid

    env = make_minigrid(cfg.mg_env, **mg_task(cfg, cfg.mg_target))
    steps = int(env.unwrapped.max_steps)
    env.close()
    return steps


def mg_pretrain(cfg, run) -> dict:
    key = "minigrid/pretrain"
    seed = phase_seed(cfg.seed, key)
    S = cfg.mg_seeds
    env = _mg_env(cfg, cfg.mg_source, S * cfg.mg_num_envs)
    fams = _mg_families(cfg, ObsSpec.of(env), S, seed)
    its = max(1, -(-cfg.mg_pretrain_steps // (cfg.mg_num_envs * cfg.mg_num_steps)))

    def log(it, stats):
        run.log(
            phase=key,
            iteration=it + 1,
            steps=(it + 1) * cfg.mg_num_envs * cfg.mg_num_steps,
            return_=float(torch.nan_to_num(stats["return"]).mean()),
            bound=float(stats["bound"].mean()),
        )

    try:
        out = train_population(
            fams[0],
            init_population(fams),
            env,
            _mg_ppo(cfg, diversity=cfg.mg_lambda > 0),
            its,
            lam=cfg.mg_lambda,
            seed=seed,
            on_iteration=log,
            loop=_loop(run, key),
        )
    finally:
        env.close()
    _save_params(run, key, out["params"])
    return {"return_curve": torch.nan_to_num(out["return"]).mean(1).tolist()}


def mg_transfer(cfg, run, scratch: bool) -> dict:
    key = "minigrid/scratch" if scratch else "minigrid/transfer"
    seed = phase_seed(cfg.seed, key)
    S = cfg.mg_seeds
    env = _mg_env(cfg, cfg.mg_target, S * cfg.mg_num_envs)
    eval_env = _mg_env(cfg, cfg.mg_target, S * cfg.mg_eval_episodes)
    H = _mg_max_steps(cfg)
    fams = _mg_families(cfg, ObsSpec.of(env), S, seed)
    result: dict = {}
    try:
        if scratch:
            params, latent, offset = init_population(fams), None, torch.zeros(S)
        else:
            params = {
                k: v.clone().requires_grad_(True) for k, v in _load_params(run, "minigrid/pretrain").items()
            }

            def make_env(goals):
                return _mg_env(cfg, cfg.mg_target, len(goals))

            zs = zero_shot(
                fams[0],
                params,
                make_env,
                [cfg.mg_target],
                k=cfg.select_k,
                episodes=cfg.mg_select_episodes,
                max_steps=H,
                seed=seed,
            )
            best = zs["success"][:, 0].argmax(-1)
            latent = zs["latents"][torch.arange(S), 0, best]
            offset = zs["steps"][:, 0]
            result["zero_shot_success"] = zs["success"][:, 0].mean(-1).tolist()
            # held-out measurement (not counted): every scored latent on fresh episodes; the selection's own
            # estimate of the chosen latent (a max over K noisy estimates) is biased upward, this one is not
            held = zero_shot(
                fams[0],
                params,
                make_env,
                [cfg.mg_target],
                k=cfg.select_k,
                episodes=cfg.mg_heldout_episodes,
                max_steps=H,
                seed=seed + 5,
                latents=zs["latents"],
            )["success"][:, 0]  # [S, K]
            result["heldout"] = {
                "episodes_per_latent": cfg.mg_heldout_episodes,
                "success": held.tolist(),
                "chosen_selection_estimate": zs["success"][torch.arange(S), 0, best].tolist(),
                "chosen_heldout": held[torch.arange(S), best].tolist(),
                "mean_heldout": held.mean(-1).tolist(),
            }
        its = max(1, -(-cfg.mg_finetune_steps // (cfg.mg_num_envs * cfg.mg_num_steps)))

        def log(it, stats):
            run.log(
                phase=key,
                iteration=it + 1,
                steps=(it + 1) * cfg.mg_num_envs * cfg.mg_num_steps,
                eval_return=float(stats["eval_return"].mean()),
            )

        out = train_population(
            fams[0],
            params,
            env,
            _mg_ppo(cfg, diversity=False),
            its,
            lam=0.0,
            latent=latent,
            seed=seed + 2,
            eval_env=eval_env,
            eval_max_steps=H,
            on_iteration=log,
            loop=_loop(run, key),
        )
    finally:
        env.close()
        eval_env.close()
    steps, reached = steps_to_threshold(
        out["eval_return"],
        out["steps_per_iteration"],
        threshold=cfg.mg_return_threshold,
        window=cfg.success_window,
        offset=offset,
    )
    return {
        **result,
        "steps": steps.tolist(),
        "reached": reached.tolist(),
        "offset": offset.tolist(),
        "steps_per_iteration": out["steps_per_iteration"],
        "budget": out["steps_per_iteration"] * its,
        "curve": out["eval_return"].T.tolist(),  # [S][iterations]
    }


__all__ = [
    "CONDITIONS",
    "ENV_ID",
    "grid_pretrain",
    "grid_scratch",
    "grid_tasks",
    "grid_transfer",
    "mg_pretrain",
    "mg_transfer",
    "summarise_grid",
]
