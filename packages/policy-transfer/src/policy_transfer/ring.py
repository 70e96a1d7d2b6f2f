"""The ring: a task where distinct routes differ from action noise, measured exactly, and transfer on it.

Task (``layout="ring"``): a ring of 12 cells around a 1x3 block, start (2, 1), source goal (2, 5), two equal
6-step routes (top row, bottom row), source horizon 12. Targets (1, 3) and (3, 3) lie on one route each and must be
reached within 4 steps (the 3-step route plus one step of slack). A policy that commits to a route reaches one of
them with probability 1; a policy that hedges (50/50 at the first step) reaches each with at most about 0.5; so
coverage@K at a success threshold of 0.8 is earned only by *different* committed policies, never by noise. The
far task reverses the source (start at the source goal, goal at the start): every pretrained policy heads the
wrong way there.

Arms (:class:`~policy_transfer.arms.Arm`), all pretrained on the source for the same steps by the one loop
:func:`policy_transfer.arms.pretrain`, each a population of independent seeds:

- ``distribution``: :class:`~policy_transfer.LatentPolicy` with the entropy bound at lambda* and probe noise sigma*;
- ``lambda0``: the same family at lambda = 0 (z-conditioned; diverse only through its random initialisation);
- ``single``: :class:`~policy_transfer.SinglePolicy` (no latent) with the default action-entropy bonus;
- ``entropy``: the single policy with the action-entropy bonus ent* (the maximum-entropy baseline);
- ``ensemble``: K heads, each head one policy, scored as its K distinct heads;
- ``scratch`` (transfer only): a fresh single policy.

Protocol: (lambda*, sigma*) and ent* are chosen on *development* seeds (``ring_dev_seeds``, seeds disjoint from
the test seeds): the candidate with the highest mean exact coverage@K among those whose mean exact source success
is at least ``ring_min_source`` (else the candidate with the best source success). Every arm is then trained and
measured on fresh test seeds. Measures (exact, :mod:`policy_transfer.exact`, on ``ring_latents`` prior draws per
seed): source success, coverage@K of the targets, distinct greedy routes among K latents, and the visitation
entropy within a latent vs between latents (mutual information of latent and visited cell).

Transfer (:func:`transfer`): every test run is fine-tuned on every near target and on the far task (lambda 0,
the same PPO settings for every arm). Arms with several policies first score K of them zero-shot
(``select_episodes`` sampled episodes each, **counted** in the steps) and fine-tune the best; a single policy has
nothing to score. Success is the **exact** success probability of the fine-tuned policy after every iteration
(no evaluation noise); steps to threshold = scoring steps + training steps until it first reaches
``ring_ft_threshold`` (censored at the budget when never).
"""

from __future__ import annotations

import torch

from .arms import Arm, load_arms, ppo_config, pretrain, save_arms
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
from .rl import init_population, repeat_population
from .transfer import train_population, zero_shot

ARMS = ("distribution", "lambda0", "single", "entropy", "ensemble")
BASELINES = ARMS[1:]
TRANSFER_ARMS = (*ARMS, "scratch")


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
    f = list(cfg.ring_far)
    if len(f) != 4:
        raise GridError(f"--ring-far needs four numbers (start row, col, goal row, col), got {tuple(f)!r}")
    far_start = layout.check_cell(f[:2], "--ring-far start")
    far_goal = layout.check_cell(f[2:], "--ring-far goal")
    if far_start == far_goal:
        raise GridError("--ring-far: start and goal must differ")
    return {
        "layout": layout,
        "start": start,
        "source": source,
        "targets": targets,
        "far_start": far_start,
        "far_goal": far_goal,
    }


def candidate_name(lam: float, sigma: float) -> str:
    return f"lam{lam:g}_sigma{sigma:g}".replace(".", "p")


def test_arms(lam: float, sigma: float, ent: float) -> list[Arm]:
    return [
        Arm(
            "distribution",
            "latent",
            lam=lam,
            sigma=sigma,
            label=f"distribution (lambda {lam:g}, sigma {sigma:g})",
        ),
        Arm("lambda0", "latent", lam=0.0, sigma=sigma, label="latent family at lambda 0"),
        Arm("single", "single", label="single policy (no z)"),
        Arm("entropy", "single", ent_coef=ent, label=f"single policy + entropy bonus {ent:g}"),
        Arm("ensemble", "ensemble", label="ensemble of K heads"),
    ]


def _pretrain(cfg, run, key: str, arms: list[Arm], seeds: int, seed: int, loop) -> dict:
    tasks = ring_tasks(cfg)
    return pretrain(
        cfg,
        run,
        key,
        arms,
        seeds,
        layout=tasks["layout"],
        start=tasks["start"],
        goal=tasks["source"],
        horizon=cfg.ring_horizon,
        num_envs=cfg.ring_num_envs,
        steps=cfg.ring_pretrain_steps,
        seed=seed,
        loop=loop,
    )


def measure(cfg, arm: Arm, family, params: dict, seed: int) -> dict[str, list[float]]:
    """Exact measures of every run of an arm (lists over runs)."""
    tasks = ring_tasks(cfg)
    layout = tasks["layout"]
    table = torch.as_tensor(layout.transitions())
    R = next(iter(params.values())).shape[0]
    latents = arm.latents(family, R, cfg.ring_latents, torch.Generator().manual_seed(int(seed)))
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


def choose(candidates: list, cover: torch.Tensor, source: torch.Tensor, min_source: float) -> dict:
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


def run_ring(cfg, run, phase_seed, loop) -> dict:
    """The whole experiment: development selection, every arm on the test seeds, transfer."""
    S, D = cfg.ring_seeds, cfg.ring_dev_seeds
    pairs = [(lam, sig) for lam in cfg.ring_lambdas for sig in cfg.ring_sigmas]
    ents = list(cfg.ring_ent_coefs)

    def dev():
        key = "ring/dev"
        seed = phase_seed(cfg.seed, key)
        arms = [Arm(candidate_name(lam, sig), "latent", lam=lam, sigma=sig) for lam, sig in pairs]
        arms += [Arm(f"ent{e:g}".replace(".", "p"), "single", ent_coef=e) for e in ents]
        pre = _pretrain(cfg, run, key, arms, D, seed, loop)
        m = {a.name: measure(cfg, a, pre[a.name]["family"], pre[a.name]["params"], seed + 1) for a in arms}

        def stack(names, what):
            return torch.tensor([m[n][what] for n in names])

        lat = [a.name for a in arms[: len(pairs)]]
        one = [a.name for a in arms[len(pairs) :]]
        return {
            "lambda_sigma": choose(
                [list(p) for p in pairs],
                stack(lat, "coverage"),
                stack(lat, "source_success"),
                cfg.ring_min_source,
            ),
            "ent_coef": choose(
                ents, stack(one, "coverage"), stack(one, "source_success"), cfg.ring_min_source
            ),
        }

    selection = run.phase("ring/dev", dev)
    lam, sigma = selection["lambda_sigma"]["chosen"]
    ent = selection["ent_coef"]["chosen"]
    arms = test_arms(lam, sigma, ent)

    def test():
        key = "ring/test"
        seed = phase_seed(cfg.seed, key)
        pre = _pretrain(cfg, run, key, arms, S, seed, loop)
        save_arms(run, key, pre)
        return {a.name: measure(cfg, a, pre[a.name]["family"], pre[a.name]["params"], seed + 1) for a in arms}

    measured = run.phase("ring/test", test)
    moved = run.phase(
        "ring/transfer",
        lambda: transfer(cfg, run, load_arms(run, "ring/test"), phase_seed(cfg.seed, "ring/transfer"), loop),
    )
    return {
        "selection": selection,
        "lambda": lam,
        "sigma": sigma,
        "ent_coef": ent,
        "arms": measured,
        "transfer": moved,
        "labels": {a.name: a.label for a in arms},
    }


# -- transfer --------------------------------------------------------------------------------------------------


def _exact_fn(family, latent, layout, start, goals, horizon):
    """``params -> [P]``: exact success of run ``p``'s policy at ``latent[p]`` on its own goal ``goals[p]``."""
    table = torch.as_tensor(layout.transitions())
    cells = sorted(set(goals))
    col = torch.tensor([cells.index(g) for g in goals])
    idx = [layout.index(c) for c in cells]
    P = len(goals)

    def fn(params):
        probs = policy_tables(family, params, layout.n_cells, latent.view(P, 1, -1))
        succ = exact_success(probs, table, layout.index(start), idx, horizon)[:, 0]  # [P, G]
        return succ[torch.arange(P), col].float()

    return fn


def _first_hit(curve: torch.Tensor, per_it: int, threshold: float, offset: torch.Tensor):
    """``curve [iterations + 1, P]`` (exact success before training and after each iteration) -> steps, reached."""
    hit = curve >= threshold
    reached = hit.any(0)
    n = curve.shape[0] - 1
    first = torch.where(reached, hit.float().argmax(0), torch.full_like(reached, n, dtype=torch.long))
    return offset + per_it * first.float(), reached


def transfer(cfg, run, saved: dict[str, tuple[Arm, dict]], seed: int, loop) -> dict:
    """Fine-tune every saved arm's runs (and scratch) on the near targets and on the far task."""
    tasks = ring_tasks(cfg)
    layout = tasks["layout"]
    spec = ObsSpec("index", layout.n_cells)
    S = cfg.ring_seeds
    settings = {
        "near": (tasks["start"], tasks["targets"], cfg.ring_target_horizon, cfg.ring_ft_steps),
        "far": (tasks["far_start"], [tasks["far_goal"]], cfg.ring_far_horizon, cfg.ring_far_steps),
    }
    torch.manual_seed(seed)
    scratch_arm = Arm("scratch", "single", label="scratch (no pretraining)")
    scratch = init_population([scratch_arm.family(spec, 4, cfg) for _ in range(S)])
    members = {name: arm for name, (arm, _) in saved.items()} | {"scratch": scratch_arm}
    params_of = {name: p for name, (_, p) in saved.items()} | {"scratch": scratch}
    out: dict = {name: {} for name in members}
    by_kind: dict[str, list[str]] = {}
    for name, arm in members.items():
        by_kind.setdefault(arm.kind, []).append(name)
    n_envs, n_steps = cfg.ring_ft_envs, cfg.ring_ft_num_steps
    for setting, (start, goals, horizon, budget) in settings.items():
        T = len(goals)
        its = max(1, -(-int(budget) // (n_envs * n_steps)))
        for g, (kind, names) in enumerate(by_kind.items()):
            key = f"ring/transfer/{setting}/{kind}"
            s_seed = seed + 1009 * g + (0 if setting == "near" else 50_000)
            family = members[names[0]].family(spec, 4, cfg)
            latents, offsets, params = [], [], []
            for j, name in enumerate(names):
                arm, p = members[name], params_of[name]
                gen = torch.Generator().manual_seed(s_seed + j)
                if arm.selects:
                    cand = arm.latents(family, S, cfg.select_k, gen)  # [S, K, d]
                    zs = zero_shot(
                        family,
                        p,
                        lambda gl, st=start, h=horizon: BatchedGridWorld(layout, gl, start=st, max_steps=h),
                        goals,
                        k=cand.shape[1],
                        episodes=cfg.select_episodes,
                        max_steps=horizon,
                        seed=s_seed + 100 + j,
                        latents=cand.unsqueeze(1).expand(S, T, -1, -1),
                    )
                    best = zs["success"].argmax(-1)  # [S, T]
                    lat = zs["latents"][torch.arange(S)[:, None], torch.arange(T)[None], best]
                    off = zs["steps"].float()
                    out[name][f"{setting}_zero_shot"] = zs["success"].mean(-1).tolist()
                else:
                    lat = family.sample_latent(S * T, gen).view(S, T, -1)
                    off = torch.zeros(S, T)
                latents.append(lat.reshape(S * T, -1))
                offsets.append(off.reshape(-1))
                params.append(repeat_population(p, torch.arange(S).repeat_interleave(T)))
            stacked = {
                k: torch.cat([p[k] for p in params]).detach().clone().requires_grad_(True) for k in params[0]
            }
            latent, offset = torch.cat(latents), torch.cat(offsets)
            run_goals = [goals[t] for _ in range(len(names) * S) for t in range(T)]
            env = BatchedGridWorld(
                layout, [gl for gl in run_goals for _ in range(n_envs)], start=start, max_steps=horizon
            )

            def log(it, st, key=key):
                run.log(phase=key, iteration=it + 1, steps=(it + 1) * n_envs * n_steps)

            res = train_population(
                family,
                stacked,
                env,
                ppo_config(cfg, n_envs, diversity=False, num_steps=n_steps),
                its,
                lam=0.0,
                latent=latent,
                seed=s_seed,
                measure=_exact_fn(family, latent, layout, start, run_goals, horizon),
                on_iteration=log,
                loop=None if loop is None else loop(key),
            )
            curve = res["measure"]  # [its + 1, P]
            steps, reached = _first_hit(curve, res["steps_per_iteration"], cfg.ring_ft_threshold, offset)
            for j, name in enumerate(names):
                rows = slice(j * S * T, (j + 1) * S * T)
                out[name][setting] = {
                    "steps": steps[rows].view(S, T).tolist(),
                    "reached": reached[rows].view(S, T).tolist(),
                    "offset": offset[rows].view(S, T).tolist(),
                    "start_success": curve[0, rows].view(S, T).tolist(),
                    "curve": curve[:, rows].view(-1, S, T).mean(-1).T.tolist(),  # [S][its + 1]
                    "budget": res["steps_per_iteration"] * its,
                    "steps_per_iteration": res["steps_per_iteration"],
                }
    return out


# -- claims ----------------------------------------------------------------------------------------------------


def _per_seed(tr: dict, setting: str) -> list[float]:
    return torch.tensor(tr[setting]["steps"]).mean(1).tolist()


def ring_claims(cfg, res: dict, run) -> dict:
    """Coverage@K of the distribution against every baseline, its behavioural diversity against the lambda-0
    family, and its transfer (steps to the fine-tuning threshold) against scratch and every baseline: Welch
    intervals over independent seeds."""
    from paperkit.claims import interval

    arms, tr = res["arms"], res["transfer"]
    k, thr = cfg.select_k, cfg.ring_threshold
    names = dict(res["labels"])
    names["ensemble"] = f"ensemble of {cfg.ensemble_heads} heads"
    names["scratch"] = "scratch (no pretraining)"
    dist = names["distribution"]
    for arm in ("entropy", "single", "ensemble", "lambda0"):
        run.claim_difference(
            f"ring_coverage_beats_{arm}",
            f"ring: exact coverage@{k} of the two one-route targets (success >= {thr:g} within "
            f"{cfg.ring_target_horizon} steps), {dist} minus {names[arm]}",
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
    ft = cfg.ring_ft_threshold
    for arm in ("scratch", "single", "entropy", "lambda0", "ensemble"):
        run.claim_difference(
            f"ring_near_transfer_beats_{arm}",
            f"ring, near targets: env steps (zero-shot scoring counted) until the fine-tuned policy's exact "
            f"success reaches {ft:g} (mean of the two targets), distribution minus {names[arm]}",
            method=_per_seed(tr["distribution"], "near"),
            control=_per_seed(tr[arm], "near"),
            control_name=names[arm],
            op="<",
            threshold=0.0,
            paired=False,
        )
    run.claim_difference(
        "ring_far_transfer_beats_scratch",
        f"ring, far task (the source reversed): env steps until exact success reaches {ft:g}, distribution "
        "minus scratch",
        method=_per_seed(tr["distribution"], "far"),
        control=_per_seed(tr["scratch"], "far"),
        control_name=names["scratch"],
        op="<",
        threshold=0.0,
        paired=False,
    )

    def row_of(values: dict) -> dict:
        row = {}
        for metric, v in values.items():
            iv = interval(v)
            row[metric] = {"mean": iv["mean"], "lo": iv["lo"], "hi": iv["hi"]}
        return row

    table = {}
    for arm, m in arms.items():
        row = row_of(m)
        row["counts"] = bool(row["source_success"]["mean"] >= cfg.ring_min_source)
        table[arm] = row
    moved = {}
    for arm, t in tr.items():
        row = {}
        for setting in ("near", "far"):
            r = t[setting]
            row[setting] = {
                "steps": row_of({"x": _per_seed(t, setting)})["x"],
                "reached": float(torch.tensor(r["reached"], dtype=torch.float).mean()),
                "start_success": float(torch.tensor(r["start_success"]).mean()),
                "budget": r["budget"],
                "curve": torch.tensor(r["curve"]).mean(0).tolist(),
                "steps_per_iteration": r["steps_per_iteration"],
            }
        moved[arm] = row
    return {"measures": table, "transfer": moved}


__all__ = [
    "ARMS",
    "TRANSFER_ARMS",
    "choose",
    "load_arms",
    "measure",
    "ring_claims",
    "ring_tasks",
    "run_ring",
    "test_arms",
    "transfer",
]
