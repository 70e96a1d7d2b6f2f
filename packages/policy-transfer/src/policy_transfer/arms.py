"""Conditions as small objects, and the one pretraining loop every experiment uses.

An :class:`Arm` is one condition's recipe: which policy family (``kind``), the weight of its diversity term
(``lam``), its action-entropy bonus (``ent_coef``) and the probe noise of the entropy bound (``sigma``). Every arm
answers the same questions: build a family (:meth:`Arm.family`), name the latents that stand for its policies
when they are measured or selected (:meth:`Arm.latents`: prior draws, or an ensemble's distinct heads), and
whether it has anything to select (:attr:`Arm.selects`). Adding a baseline is adding an ``Arm``.

:func:`pretrain` trains any list of arms on one task, ``seeds`` independent runs each: arms of the same family
kind share one population (their runs are stacked and trained at once, each with its own lambda, entropy bonus
and sigma), so the whole condition grid of an experiment costs one process and a few vectorised loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch

from .baselines import BayesianPolicy, EnsemblePolicy, SinglePolicy
from .distribution import LatentPolicy
from .gridworld import BatchedGridWorld
from .policy import ObsSpec, PolicyFamily
from .rl import PPOConfig, init_population
from .transfer import train_population

KINDS = ("latent", "single", "ensemble", "bayes")


@dataclass(frozen=True)
class Arm:
    """One condition. ``ent_coef``/``sigma`` ``None``: the config's ``ent_coef``/``probe_noise``."""

    name: str
    kind: str
    lam: float = 0.0
    ent_coef: float | None = None
    sigma: float | None = None
    label: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Arm.kind must be one of {KINDS}, got {self.kind!r}")

    def family(self, spec: ObsSpec, n_actions: int, cfg) -> PolicyFamily:
        """A freshly initialised family of this arm's kind (uses the global torch RNG)."""
        if self.kind == "latent":
            return LatentPolicy(
                spec,
                n_actions,
                latent_dim=cfg.latent_dim,
                hyper_init=cfg.hyper_init,
                probe_noise=self.sigma if self.sigma is not None else cfg.probe_noise,
            )
        if self.kind == "single":
            return SinglePolicy(spec, n_actions)
        if self.kind == "ensemble":
            return EnsemblePolicy(spec, n_actions, heads=cfg.ensemble_heads, head_init=cfg.hyper_init)
        return BayesianPolicy(spec, n_actions, init_std=cfg.bayes_init_std)

    @property
    def selects(self) -> bool:
        """Whether the arm holds more than one policy to choose from (a single policy has nothing to score)."""
        return self.kind != "single"

    @property
    def measures_bound(self) -> bool:
        """Whether the diversity term is computed while training (the latent family's bound is measured at
        lambda = 0 too; an ensemble and a single policy have none)."""
        return self.kind in ("latent", "bayes")

    def latents(self, family: PolicyFamily, runs: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """``[runs, L, d]``: the policies that stand for this arm: ``n`` prior draws per run (a single policy's
        are all the same policy), or an ensemble's distinct heads."""
        if isinstance(family, EnsemblePolicy):
            return family.heads().expand(runs, -1, -1)
        return family.sample_latent(runs * n, generator).view(runs, n, -1)

    def resolve(self, cfg) -> Arm:
        """The arm with ``ent_coef`` and ``sigma`` filled in from ``cfg``."""
        return replace(
            self,
            ent_coef=cfg.ent_coef if self.ent_coef is None else self.ent_coef,
            sigma=cfg.probe_noise if self.sigma is None else self.sigma,
        )


def ppo_config(cfg, num_envs: int, *, diversity: bool, num_steps: int | None = None) -> PPOConfig:
    """The learner's settings from the trainer's config (``diversity=False`` turns the bound off)."""
    return PPOConfig(
        algo=cfg.algo,
        num_envs=num_envs,
        num_steps=cfg.num_steps if num_steps is None else num_steps,
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


def save_arms(run, key: str, pre: dict) -> None:
    """Save every arm's parameters (``pretrain``'s output) in the run's checkpoint ``key``, with the arms."""
    run.checkpoint(key).save(
        0,
        {name: p["params"] for name, p in pre.items()},
        state={"arms": {name: asdict(p["arm"]) for name, p in pre.items()}},
    )


def load_arms(run, key: str) -> dict[str, tuple[Arm, dict]]:
    """The arms a phase saved: ``{name: (arm, stacked params)}``."""
    _, weights, state = run.checkpoint(key).load(restore_rng=False)
    return {name: (Arm(**state["arms"][name]), weights[name]) for name in state["arms"]}


def groups(arms: list[Arm]) -> dict[str, list[Arm]]:
    """Arms by family kind, in order of first appearance."""
    out: dict[str, list[Arm]] = {}
    for arm in arms:
        out.setdefault(arm.kind, []).append(arm)
    return out


def pretrain(
    cfg,
    run,
    key: str,
    arms: list[Arm],
    seeds: int,
    *,
    layout,
    start,
    goal,
    horizon: int,
    num_envs: int,
    steps: int,
    seed: int,
    n_actions: int = 4,
    loop: Callable[[str], Callable[[int], object]] | None = None,
) -> dict[str, dict]:
    """Train every arm on the source task ``goal``, ``seeds`` runs each; one population per family kind.

    Returns ``{arm.name: {"arm", "family", "params" [seeds, ...], "success_curve" [iterations],
    "final_success" [seeds], "final_bound" [seeds]}}``. Run ``i`` of a kind's population is initialised from
    ``torch.manual_seed(seed_kind + 7919 * i)``, so a population is reproducible from ``seed`` and its arms.
    """
    spec = ObsSpec("index", layout.n_cells)
    arms = [a.resolve(cfg) for a in arms]
    out: dict[str, dict] = {}
    for g, (kind, members) in enumerate(groups(arms).items()):
        fams = []
        for i in range(len(members) * seeds):
            torch.manual_seed(seed + 104_729 * g + 7919 * i)
            fams.append(members[i // seeds].family(spec, n_actions, cfg))
        per_run = {
            name: torch.tensor([getattr(a, name) for a in members]).repeat_interleave(seeds)
            for name in ("lam", "ent_coef", "sigma")
        }
        env = BatchedGridWorld(layout, [goal], len(fams) * num_envs, start=start, max_steps=horizon)
        its = max(1, -(-int(steps) // (num_envs * cfg.num_steps)))
        phase = f"{key}/{kind}"

        def log(it: int, st: dict, members=members, phase=phase) -> None:
            s = torch.nan_to_num(st["success_rate"]).view(len(members), seeds).mean(1)
            b = st["bound"].view(len(members), seeds).mean(1)
            run.log(
                phase=phase,
                iteration=it + 1,
                steps=(it + 1) * num_envs * cfg.num_steps,
                **{f"success_{a.name}": float(s[j]) for j, a in enumerate(members)},
                **{f"bound_{a.name}": float(b[j]) for j, a in enumerate(members)},
            )

        res = train_population(
            fams[0],
            init_population(fams),
            env,
            ppo_config(cfg, num_envs, diversity=any(a.measures_bound for a in members)),
            its,
            lam=per_run["lam"],
            ent_coef=per_run["ent_coef"],
            sigma=per_run["sigma"],
            seed=seed + 104_729 * g,
            on_iteration=log,
            loop=None if loop is None else loop(phase),
        )
        success = torch.nan_to_num(res["success"]).view(its, len(members), seeds)
        bound = res["bound"].view(its, len(members), seeds)
        tail = max(1, its // 10)
        for j, arm in enumerate(members):
            rows = slice(j * seeds, (j + 1) * seeds)
            out[arm.name] = {
                "arm": arm,
                "family": fams[0],
                "params": {k: v[rows].detach().clone() for k, v in res["params"].items()},
                "success_curve": success[:, j].mean(1).tolist(),
                "final_success": success[-tail:, j].mean(0).tolist(),
                "final_bound": bound[-tail:, j].mean(0).tolist(),
                "steps_per_iteration": res["steps_per_iteration"],
            }
    return out


__all__ = ["KINDS", "Arm", "groups", "load_arms", "ppo_config", "pretrain", "save_arms"]
