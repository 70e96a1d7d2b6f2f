"""``uv run --package policy-transfer train``: transfer with a distribution over policies, with claims and figures.

Experiments (``--experiments``; the default preset runs ``ring``):

- ``ring``: a ring around a block with two equal routes from start to source goal; targets on one route each.
  Arms: the distribution (lambda and sigma chosen on development seeds), the same family at lambda 0, a single
  policy, a single policy with a tuned action-entropy bonus, an ensemble of K heads. Exact measures (dynamic
  programming): coverage@K, visitation diversity; then transfer by fine-tuning on the near targets and on the
  reversed (far) task, against scratch and every baseline.
- ``gridworld``: an open 9x9 room (or ``four_rooms``), start in the centre, source goal in a corner; near targets
  (shortest-path distance 2-3 from the source goal) and one far goal; distribution, lambda-0 family, Bayesian,
  ensemble, scratch.
- ``minigrid``: minigrid's Empty room with the goal moved (partially observable), distribution vs scratch.

Claims compare the distribution with a named control over seeds (Welch t intervals): ring coverage@K and
visitation against every baseline, ring transfer steps against scratch and every baseline, open-room near
transfer against scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from paperkit import BaseConfig, ConfigError, knob

DESCRIPTION = __doc__.splitlines()[0]
EXPERIMENTS = ("ring", "gridworld", "minigrid")
PRETRAINED = ("distribution", "single", "bayes", "ensemble", "distribution-sample")
CONDITIONS = (*PRETRAINED, "scratch")
MOVED_GOAL_ID = "PolicyTransfer/MiniGrid-MovedGoal-v0"


@dataclass
class Config(BaseConfig):
    experiments: tuple[str, ...] = knob(
        ("ring",),
        "experiments to run, comma-separated (the default preset: the ring; smoke and paper: all three)",
        choices=EXPERIMENTS,
    )
    seeds: int = knob(
        16, "GridWorld seeds per condition (each seed: one pretrained run, one run per target)", low=1
    )
    threads: int = knob(
        1, "torch threads (one is fastest for these small tensors, and fair to a shared machine)", low=1
    )
    conditions: tuple[str, ...] = knob(
        ("distribution", "single", "scratch", "bayes", "ensemble", "distribution-sample"),
        "GridWorld conditions (distribution-sample: the distribution with sample-mode transfer)",
        choices=CONDITIONS,
    )
    # the diversity experiment (ring): exact measures, baselines, lambda and entropy bonus chosen on dev seeds
    ring_layout: str = knob(
        "ring", "layout of the diversity experiment (ring: two equal routes around a block)"
    )
    ring_start: tuple[int, ...] = knob((2, 1), "ring: start cell (row, col)", low=0)
    ring_source: tuple[int, ...] = knob((2, 5), "ring: source goal (row, col)", low=0)
    ring_targets: tuple[int, ...] = knob(
        (1, 3, 3, 3), "ring: target cells as row,col pairs (each on one route only)", low=0
    )
    ring_horizon: int = knob(12, "ring: source episode length", low=1)
    ring_target_horizon: int = knob(4, "ring: steps within which a target must be reached", low=1)
    ring_threshold: float = knob(0.8, "ring: exact success that counts as solving a target", low=0, high=1)
    ring_seeds: int = knob(16, "ring: test seeds per arm (the claims)", low=2)
    ring_dev_seeds: int = knob(
        8, "ring: development seeds per candidate (selection of lambda and ent)", low=1
    )
    ring_lambdas: tuple[float, ...] = knob(
        (0.03, 0.1, 0.3, 1.0), "ring: candidate lambdas (dev seeds)", low=0
    )
    ring_sigmas: tuple[float, ...] = knob(
        (0.05, 0.2),
        "ring: candidate probe noises sigma of the bound (dev seeds, crossed with the lambdas)",
        low=0,
        low_open=True,
    )
    ring_ent_coefs: tuple[float, ...] = knob(
        (0.03, 0.1, 0.3), "ring: candidate entropy bonuses of the single policy (dev seeds)", low=0
    )
    ring_min_source: float = knob(
        0.9, "ring: exact source success a candidate needs to be chosen (and an arm to count)", low=0, high=1
    )
    ring_pretrain_steps: int = knob(40960, "ring: source steps per run", low=1)
    ring_num_envs: int = knob(32, "ring: environment copies per run (rollouts of --num-steps)", low=1)
    ring_latents: int = knob(256, "ring: prior draws per seed for the exact measures", low=1)
    ring_far: tuple[int, ...] = knob(
        (2, 5, 2, 1), "ring: the far task's start and goal (row, col, row, col): the source reversed", low=0
    )
    ring_far_horizon: int = knob(8, "ring: episode length of the far task", low=1)
    ring_ft_steps: int = knob(4096, "ring: fine-tuning budget per run on a near target (env steps)", low=1)
    ring_far_steps: int = knob(8192, "ring: fine-tuning budget per run on the far task (env steps)", low=1)
    ring_ft_envs: int = knob(8, "ring: environment copies per fine-tuning run", low=1)
    ring_ft_num_steps: int = knob(16, "ring: rollout length while fine-tuning", low=1)
    ring_ft_threshold: float = knob(
        0.9, "ring: exact success of the fine-tuned policy that counts as transferred", low=0, high=1
    )
    # GridWorld tasks
    grid_layout: str = knob("open9", "open<N> (an open N x N room) or four_rooms")
    grid_start: tuple[int, ...] = knob((4, 4), "start cell (row, col)", low=0)
    grid_source: tuple[int, ...] = knob((0, 8), "source goal (row, col)", low=0)
    grid_near: tuple[int, ...] = knob(
        (2, 3), "near targets: shortest-path distance range from the source goal", low=1
    )
    grid_far: tuple[int, ...] = knob((8, 0), "far goal (row, col): the negative-transfer control", low=0)
    grid_max_steps: int = knob(20, "episode length limit", low=1)
    # the distribution over policies
    latent_dim: int = knob(4, "d: dimension of z ~ N(0, I)", low=1)
    lam: float = knob(1.0, "lambda: weight of the entropy lower bound while pretraining", low=0)
    probe_noise: float = knob(
        0.1, "sigma of the noise added to the probe outputs in the bound", low=0, low_open=True
    )
    probe_states: int = knob(16, "m: probe states per update, drawn from the rollout", low=1)
    probe_latents: int = knob(16, "prior draws of z per update for the bound", low=1)
    hyper_init: float = knob(0.1, "std of the hypernetwork (and ensemble) weights at initialisation", low=0)
    finetune_lambda: float = knob(0.0, "lambda while fine-tuning on a target", low=0)
    bayes_lambda: float = knob(0.1, "Bayesian baseline: weight of its entropy per parameter", low=0)
    bayes_init_std: float = knob(0.3, "Bayesian baseline: initial sigma of q(W)", low=0, low_open=True)
    ensemble_heads: int = knob(8, "ensemble baseline: number of heads", low=1)
    # RL (GridWorld)
    algo: str = knob("ppo", "ppo or a2c", choices=("ppo", "a2c"))
    num_envs: int = knob(16, "environment copies per run", low=1)
    num_steps: int = knob(32, "rollout length per copy", low=1)
    lr: float = knob(0.02, "Adam learning rate (GridWorld)", low=0, low_open=True)
    gamma: float = knob(0.99, "discount", low=0, high=1)
    gae_lambda: float = knob(0.95, "GAE lambda", low=0, high=1)
    update_epochs: int = knob(4, "PPO epochs per rollout", low=1)
    num_minibatches: int = knob(4, "PPO minibatches per epoch", low=1)
    clip_coef: float = knob(0.2, "PPO clip range", low=0)
    ent_coef: float = knob(0.01, "action-entropy bonus", low=0)
    vf_coef: float = knob(0.5, "value-loss weight", low=0)
    max_grad_norm: float = knob(0.5, "per-run gradient-norm clip (0: off)", low=0)
    pretrain_steps: int = knob(20480, "source-task environment steps per run", low=1)
    finetune_steps: int = knob(20480, "target-task training steps per run (the budget)", low=1)
    # transfer protocol and metrics
    transfer_mode: str = knob(
        "select", "select: best of K zero-shot latents; sample: keep drawing z", choices=("select", "sample")
    )
    select_k: int = knob(8, "K: latents scored zero-shot per target (selection and coverage@K)", low=1)
    select_episodes: int = knob(8, "zero-shot episodes per latent (counted in select's budget)", low=1)
    solve_threshold: float = knob(
        0.5, "a latent solves a target when its zero-shot success reaches this", low=0, high=1
    )
    success_threshold: float = knob(0.9, "success rate that counts as reaching a target", low=0, high=1)
    success_window: int = knob(3, "evaluations in the moving average tested against the threshold", low=1)
    eval_episodes: int = knob(16, "evaluation episodes per run after every iteration", low=1)
    bootstrap: int = knob(5000, "bootstrap resamples for the intervals", low=100)
    # MiniGrid
    mg_env: str = knob(MOVED_GOAL_ID, "MiniGrid task id (the goal is moved through goal_pos)")
    mg_size: int = knob(6, "room size (walls included)", low=4)
    mg_source: tuple[int, ...] = knob((4, 4), "source goal (x, y)", low=0)
    mg_target: tuple[int, ...] = knob((1, 4), "target goal (x, y)", low=0)
    mg_max_steps: int = knob(0, "episode limit (0: minigrid's 4 * size ** 2)", low=0)
    mg_actions: int = knob(3, "actions the policy uses (3: left, right, forward)", low=1, high=7)
    mg_seeds: int = knob(5, "MiniGrid seeds", low=1)
    mg_num_envs: int = knob(8, "MiniGrid environment copies per seed", low=1)
    mg_num_steps: int = knob(128, "MiniGrid rollout length", low=1)
    mg_lr: float = knob(1e-3, "Adam learning rate (MiniGrid)", low=0, low_open=True)
    mg_lambda: float = knob(1.0, "lambda while pretraining on MiniGrid", low=0)
    mg_pretrain_steps: int = knob(16384, "MiniGrid source steps per seed", low=1)
    mg_finetune_steps: int = knob(12288, "MiniGrid target budget per seed", low=1)
    mg_select_episodes: int = knob(
        2, "MiniGrid zero-shot episodes per latent (counted: the selection)", low=1
    )
    mg_heldout_episodes: int = knob(
        64,
        "MiniGrid held-out episodes per scored latent (measurement of zero-shot success, not counted)",
        low=1,
    )
    mg_eval_episodes: int = knob(4, "MiniGrid evaluation episodes per seed per iteration", low=1)
    mg_return_threshold: float = knob(0.9, "MiniGrid: evaluation return that counts as solved", low=0, high=1)

    def check(self) -> None:
        for name in ("grid_start", "grid_source", "grid_far", "grid_near", "mg_source", "mg_target"):
            if len(getattr(self, name)) != 2:
                raise ConfigError(
                    f"--{name.replace('_', '-')} needs two numbers, got {getattr(self, name)!r}"
                )
        if self.grid_near[0] > self.grid_near[1]:
            raise ConfigError(f"--grid-near must be LOW,HIGH, got {self.grid_near!r}")
        pairs = (
            (self.num_envs, self.num_steps),
            (self.mg_num_envs, self.mg_num_steps),
            (self.ring_num_envs, self.num_steps),
            (self.ring_ft_envs, self.ring_ft_num_steps),
        )
        for n_envs, steps in pairs:
            if (n_envs * steps) % self.num_minibatches and self.algo == "ppo":
                raise ConfigError(
                    f"num_envs * num_steps = {n_envs * steps} is not divisible by --num-minibatches {self.num_minibatches}"
                )
        if "ring" in self.experiments:
            from .gridworld import GridError
            from .ring import ring_tasks

            try:
                ring_tasks(self)
            except GridError as e:
                raise ConfigError(str(e)) from None
            if self.select_k > self.ring_latents:
                raise ConfigError(f"--select-k {self.select_k} exceeds --ring-latents {self.ring_latents}")
            if not self.ring_lambdas or not self.ring_ent_coefs or not self.ring_sigmas:
                raise ConfigError(
                    "--ring-lambdas, --ring-sigmas and --ring-ent-coefs need at least one candidate each"
                )
        if "gridworld" in self.experiments:
            from .experiments import grid_tasks
            from .gridworld import GridError

            try:
                grid_tasks(self)
            except GridError as e:
                raise ConfigError(str(e)) from None
        if "minigrid" in self.experiments:
            from .envs import EnvError, make_minigrid

            if tuple(self.mg_source) == tuple(self.mg_target):
                raise ConfigError("--mg-source and --mg-target must differ")
            from .experiments import mg_task

            for what, goal in (("--mg-source", self.mg_source), ("--mg-target", self.mg_target)):
                try:
                    make_minigrid(self.mg_env, **mg_task(self, goal)).close()
                except EnvError as e:
                    raise ConfigError(str(e) if "unknown" in str(e) else f"{what}: {e}") from None


PRESETS = {
    "smoke": dict(
        experiments=EXPERIMENTS,
        seeds=2,
        conditions=("distribution", "single", "scratch", "bayes", "ensemble"),
        pretrain_steps=2048,
        finetune_steps=2048,
        num_envs=8,
        select_k=4,
        select_episodes=2,
        eval_episodes=4,
        bootstrap=200,
        mg_size=5,
        mg_source=(3, 3),
        mg_target=(1, 3),
        mg_seeds=2,
        mg_num_envs=2,
        mg_num_steps=32,
        mg_pretrain_steps=128,
        mg_finetune_steps=128,
        mg_eval_episodes=1,
        mg_select_episodes=1,
        mg_heldout_episodes=2,
        ring_seeds=3,
        ring_dev_seeds=2,
        ring_lambdas=(0.1, 1.0),
        ring_ent_coefs=(0.1,),
        ring_sigmas=(0.1,),
        ring_ft_steps=256,
        ring_far_steps=256,
        ring_pretrain_steps=1024,
        ring_latents=8,
        ring_num_envs=8,
    ),
    "default": {},
    "paper": dict(
        experiments=EXPERIMENTS,
        seeds=32,
        conditions=CONDITIONS,
        grid_layout="four_rooms",
        grid_start=(3, 3),
        grid_source=(2, 10),
        grid_far=(10, 2),
        grid_max_steps=40,
        pretrain_steps=102400,
        finetune_steps=51200,
        mg_env="MiniGrid-FourRooms-v0",
        mg_seeds=10,
        mg_size=19,
        mg_source=(16, 16),
        mg_target=(16, 12),
        mg_pretrain_steps=500_000,
        mg_finetune_steps=200_000,
        mg_lr=2.5e-4,
        ring_seeds=64,
        ring_dev_seeds=16,
        ring_latents=1024,
    ),
}
