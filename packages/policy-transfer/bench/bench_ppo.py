"""Training throughput: our PPO vs a CleanRL-style PPO on the same MiniGrid task; batched GridWorld steps/s.

1. MiniGrid (``PolicyTransfer/MiniGrid-MovedGoal-v0``, 6x6, goal moved to (1, 4)), a gymnasium ``SyncVectorEnv``
   of 8 copies with same-step autoreset, 128-step rollouts, 4 epochs x 4 minibatches, 64-64 tanh MLPs, 3 actions,
   observations flattened and scaled by 1/10. Environment steps per second, rollouts plus updates:

   - ``cleanrl``: a single-file PPO written here in CleanRL's style (``ppo.py``: per-step ``torch.Tensor``
     conversion, ``Categorical``, global-norm clipping), the anchor;
   - ``ours (lambda 0)``: :class:`policy_transfer.Learner` with the same network sizes and the bound off;
   - ``ours (distribution)``: the same with the entropy bound on (16 latents x 16 probe states per minibatch).

2. Batched GridWorld (open 9x9, random actions, one thread): steps per second of :class:`BatchedGridWorld` at
   several batch sizes, and of gymnasium's ``SyncVectorEnv`` of :class:`GridWorldEnv` for reference.
3. The twin through gymnasium's ``VectorEnv`` interface (:class:`GridWorldVectorEnv`, numpy arrays, episode
   statistics in ``info``) against ``SyncVectorEnv`` of :class:`GridWorldEnv`, the same loop (goal: 50x).

    uv run --package policy-transfer python packages/policy-transfer/bench/bench_ppo.py [--iterations 4]

Goals (issue 6): ours at least as fast as the CleanRL-style PPO; the batched GridWorld at least 100,000 steps/s on
one core.
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium as gym
import numpy as np
import torch
from policy_transfer import (
    BatchedGridWorld,
    GridWorldEnv,
    GridWorldVectorEnv,
    LatentPolicy,
    ObsSpec,
    PPOConfig,
    make_vector_env,
)
from policy_transfer.envs import make_minigrid
from policy_transfer.rl import Learner, init_population
from torch import nn
from torch.distributions import Categorical

TASK = dict(size=6, goal_pos=(1, 4))
ENV_ID = "PolicyTransfer/MiniGrid-MovedGoal-v0"
N_ENVS, N_STEPS, EPOCHS, MINIBATCHES, N_ACTIONS = 8, 128, 4, 4, 3


# -- the anchor: PPO in CleanRL's style (one file, one agent, a flat training loop) ------------------------


def layer(m: nn.Linear, std: float = np.sqrt(2)) -> nn.Linear:
    nn.init.orthogonal_(m.weight, std)
    nn.init.zeros_(m.bias)
    return m


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
        self.critic = nn.Sequential(
            layer(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer(nn.Linear(64, 64)),
            nn.Tanh(),
            layer(nn.Linear(64, 1), 1.0),
        )
        self.actor = nn.Sequential(
            layer(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer(nn.Linear(64, 64)),
            nn.Tanh(),
            layer(nn.Linear(64, n_actions), 0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(x)


def cleanrl_ppo(iterations: int, seed: int = 0) -> float:
    """Environment steps per second of the CleanRL-style loop (the first iteration is a warm-up)."""
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_minigrid(ENV_ID, **TASK) for _ in range(N_ENVS)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = Agent(obs_dim, N_ACTIONS)
    opt = torch.optim.Adam(agent.parameters(), lr=2.5e-4, eps=1e-5)
    obs = torch.zeros((N_STEPS, N_ENVS, obs_dim))
    actions = torch.zeros((N_STEPS, N_ENVS))
    logprobs, rewards, dones, values = (torch.zeros((N_STEPS, N_ENVS)) for _ in range(4))
    next_obs, _ = envs.reset(seed=seed)
    next_obs = torch.Tensor(next_obs.reshape(N_ENVS, -1) / 10.0)
    next_done = torch.zeros(N_ENVS)
    batch, mb = N_ENVS * N_STEPS, N_ENVS * N_STEPS // MINIBATCHES
    t0 = None
    for it in range(iterations + 1):
        if it == 1:
            t0 = time.perf_counter()
        for step in range(N_STEPS):
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step], logprobs[step] = action, logprob
            next_obs, reward, term, trunc, infos = envs.step(action.cpu().numpy())
            rewards[step] = torch.tensor(reward).view(-1)
            next_obs = torch.Tensor(next_obs.reshape(N_ENVS, -1) / 10.0)
            next_done = torch.Tensor(np.logical_or(term, trunc).astype(np.float32))
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            adv = torch.zeros_like(rewards)
            last = 0
            for t in reversed(range(N_STEPS)):
                nonterminal = 1.0 - (next_done if t == N_STEPS - 1 else dones[t + 1])
                nv = next_value if t == N_STEPS - 1 else values[t + 1]
                delta = rewards[t] + 0.99 * nv * nonterminal - values[t]
                adv[t] = last = delta + 0.99 * 0.95 * nonterminal * last
            returns = adv + values
        b_obs, b_logp, b_act = obs.reshape(batch, -1), logprobs.reshape(-1), actions.reshape(-1)
        b_adv, b_ret = adv.reshape(-1), returns.reshape(-1)
        for _ in range(EPOCHS):
            idx = np.random.permutation(batch)
            for start in range(0, batch, mb):
                i = idx[start : start + mb]
                _, newlogp, entropy, newv = agent.get_action_and_value(b_obs[i], b_act.long()[i])
                ratio = (newlogp - b_logp[i]).exp()
                a = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                pg = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
                v_loss = 0.5 * ((newv.view(-1) - b_ret[i]) ** 2).mean()
                loss = pg - 0.01 * entropy.mean() + 0.5 * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                opt.step()
    envs.close()
    return iterations * batch / (time.perf_counter() - t0)


def ours(iterations: int, diversity: bool, seed: int = 0) -> float:
    torch.manual_seed(seed)
    env = make_vector_env(ENV_ID, N_ENVS, n_actions=N_ACTIONS, **TASK)
    family = LatentPolicy(ObsSpec.of(env), N_ACTIONS, latent_dim=4, z_in_trunk=True)
    cfg = PPOConfig(
        num_envs=N_ENVS,
        num_steps=N_STEPS,
        lr=2.5e-4,
        update_epochs=EPOCHS,
        num_minibatches=MINIBATCHES,
        probe_latents=16 if diversity else 0,
        bootstrap_truncated=True,
    )
    learner = Learner(family, init_population([family]), env, cfg, lam=1.0 if diversity else 0.0, seed=seed)
    learner.iterate()  # warm-up
    t0 = time.perf_counter()
    for _ in range(iterations):
        learner.iterate()
    env.close()
    return iterations * cfg.batch_size / (time.perf_counter() - t0)


def grid_steps(batch: int, steps: int = 2000) -> float:
    env = BatchedGridWorld("open9", [(0, 8)], num_envs=batch, start=(4, 4), max_steps=20)
    env.reset(seed=0)
    actions = torch.randint(0, 4, (steps, batch), generator=torch.Generator().manual_seed(0))
    for a in actions[:50]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    return steps * batch / (time.perf_counter() - t0)


def vector_env_steps(batch: int, steps: int = 300) -> float:
    """The twin through the gymnasium ``VectorEnv`` interface (numpy in and out, episode statistics), driven like
    a SyncVectorEnv: the same loop as :func:`gym_grid_steps`."""
    envs = GridWorldVectorEnv("open9", [(0, 8)], num_envs=batch, start=(4, 4), max_steps=20)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 4, batch) for _ in range(steps)]
    t0 = time.perf_counter()
    for a in actions:
        envs.step(a)
    return steps * batch / (time.perf_counter() - t0)


def gym_grid_steps(batch: int, steps: int = 300) -> float:
    envs = gym.vector.SyncVectorEnv(
        [lambda: GridWorldEnv("open9", start=(4, 4), goal=(0, 8), max_steps=20) for _ in range(batch)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        envs.step(rng.integers(0, 4, batch))
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--iterations", type=int, default=4, help="timed PPO iterations per contender (after a warm-up)"
    )
    ap.add_argument(
        "--repeats", type=int, default=2, help="alternating repeats; the best of each is reported"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.2f}")
    print(
        f"\nMiniGrid PPO throughput ({N_ENVS} envs x {N_STEPS} steps, {EPOCHS}x{MINIBATCHES} minibatches), env steps/s:"
    )
    best = {"cleanrl": 0.0, "ours (lambda 0)": 0.0, "ours (distribution)": 0.0}
    for _ in range(args.repeats):  # alternate, so that load changes hit every contender
        best["cleanrl"] = max(best["cleanrl"], cleanrl_ppo(args.iterations))
        best["ours (lambda 0)"] = max(best["ours (lambda 0)"], ours(args.iterations, diversity=False))
        best["ours (distribution)"] = max(best["ours (distribution)"], ours(args.iterations, diversity=True))
    for name, sps in best.items():
        print(f"  {name:22s} {sps:8.0f}   ratio to cleanrl {sps / best['cleanrl']:.2f}")
    print("\nBatched GridWorld (open 9x9, random actions, 1 thread), steps/s:")
    for b in (64, 256, 1024, 4096):
        print(f"  BatchedGridWorld B={b:<5d} {grid_steps(b):12.0f}")
    print(f"  gymnasium SyncVectorEnv B=64 {gym_grid_steps(64):9.0f}")
    print(
        "\nThe same through gymnasium's VectorEnv interface (numpy actions in, numpy out, episode info), steps/s:"
    )
    for b in (64, 1024, 4096):
        ours_v, ref = 0.0, 0.0
        for _ in range(args.repeats):
            ours_v = max(ours_v, vector_env_steps(b, steps=max(50, 20000 // b)))
            ref = max(ref, gym_grid_steps(b, steps=max(10, 6400 // b)))
        print(
            f"  B={b:<4d} GridWorldVectorEnv {ours_v:10.0f}  SyncVectorEnv {ref:8.0f}  ratio {ours_v / ref:6.1f}x"
        )
    print(f"  load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
