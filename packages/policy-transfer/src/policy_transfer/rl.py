"""PPO and A2C for a *population* of policy families over one torch vector env (CleanRL's algorithm, rewritten).

A population is ``P`` independent runs (seeds, target tasks, conditions) whose parameters are stacked along a
leading dimension and trained at once: every loss is computed per run with ``torch.func.vmap`` over
``functional_call`` and summed, Adam is elementwise, and gradient clipping is per run, so run ``p`` follows
exactly the updates it would follow alone (tested). The environment holds ``P * num_envs`` copies; copy
``p * num_envs + i`` belongs to run ``p``.

The loop, per iteration: ``num_steps`` steps of every copy (same-step autoreset; the latent of a copy is redrawn
from the prior when its episode ends, or fixed per run), GAE with the bootstrap ``V(final_obs)`` folded into the
reward of truncated steps, then ``update_epochs`` passes of ``num_minibatches`` minibatches of the clipped PPO
surrogate + value loss - entropy bonus - lambda * diversity objective + auxiliary loss (the inference network).
``algo="a2c"`` takes one gradient step on the whole rollout with the unclipped policy gradient.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .policy import PolicyFamily


@dataclass
class PPOConfig:
    """Hyperparameters of one learner (per run; the population shares them)."""

    algo: str = "ppo"  # "ppo" or "a2c"
    num_envs: int = 16  # environment copies per run
    num_steps: int = 32  # steps per copy per iteration
    lr: float = 0.01
    anneal_lr: bool = False
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 4
    num_minibatches: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    bootstrap_truncated: bool = True
    probe_states: int = 16  # m probe states per update, drawn from the rollout
    probe_latents: int = 16  # n prior draws for the diversity term; 0 turns the term off

    def __post_init__(self):
        if self.algo not in ("ppo", "a2c"):
            raise ValueError(f"algo must be 'ppo' or 'a2c', got {self.algo!r}")
        if self.algo == "a2c":
            self.update_epochs, self.num_minibatches = 1, 1
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(
                f"num_envs * num_steps = {self.num_envs * self.num_steps} is not divisible by "
                f"num_minibatches = {self.num_minibatches}"
            )

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) for ``[T, ...]`` rollouts.

    ``dones[t]`` is True when transition ``t`` ended its episode (so ``values[t + 1]`` belongs to a new episode);
    ``next_value`` is V of the observation after the last step. Returns ``(advantages, returns)``::

        delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
    """
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        nv = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        keep = 1.0 - dones[t].to(rewards.dtype)
        last = rewards[t] + gamma * nv * keep - values[t] + gamma * lam * keep * last
        adv[t] = last
    return adv, adv + values


def init_population(families: list[PolicyFamily]) -> dict[str, torch.Tensor]:
    """Stack the parameters of independently initialised families: ``{name: [P, ...]}`` leaf tensors."""
    params, _ = stack_module_state(families)
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}


def repeat_population(params: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """A new population whose run ``i`` starts from run ``index[i]`` of ``params`` (pretrained -> targets)."""
    return {k: v.detach()[index].clone().requires_grad_(True) for k, v in params.items()}


def population_forward(
    family: PolicyFamily, params: dict[str, torch.Tensor], obs: torch.Tensor, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and values for flat run-major inputs ``[P * n, ...]``, run ``p`` with its own parameters."""
    P = run_count(params)
    if P == 1:  # no vmap overhead for a single run
        return functional_call(family, {k: v[0] for k, v in params.items()}, (obs, z))
    fn = vmap(lambda p, o, zz: functional_call(family, p, (o, zz)))
    logits, value = fn(params, obs.view(P, -1, *obs.shape[1:]), z.view(P, -1, *z.shape[1:]))
    return logits.reshape(-1, logits.shape[-1]), value.reshape(-1)


def run_count(params: dict[str, torch.Tensor]) -> int:
    """The number of runs ``P`` in a stacked parameter dict."""
    return int(next(iter(params.values())).shape[0])


class _Objective(nn.Module):
    """The loss of one run on one minibatch (a module, so that ``functional_call`` swaps in its parameters)."""

    def __init__(self, family: PolicyFamily, cfg: PPOConfig):
        super().__init__()
        self.family = family
        self.cfg = cfg

    def forward(self, obs, z, actions, old_logp, adv, returns, probe_obs, zq, noise, lam, ent_coef, sigma):
        cfg = self.cfg
        logits, value = self.family(obs, z)
        logp_all = torch.log_softmax(logits, -1)
        logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        if cfg.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        log_ratio = logp - old_logp
        ratio = log_ratio.exp()
        if cfg.algo == "ppo":
            pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
        else:
            pg = -(adv * logp).mean()
        v_loss = 0.5 * ((value - returns) ** 2).mean()
        loss = pg - ent_coef * entropy + cfg.vf_coef * v_loss
        if cfg.probe_latents > 0:
            div = self.family.diversity(probe_obs, zq, noise, sigma)
            loss = loss - lam * div["objective"] + div["aux_loss"]
            bound = div["bound"].detach()
        else:
            bound = torch.zeros((), device=loss.device)
        kl = ((ratio - 1) - log_ratio).mean().detach()
        return loss, torch.stack([pg.detach(), v_loss.detach(), entropy.detach(), bound, kl])


STAT_NAMES = ("pg_loss", "v_loss", "entropy", "bound", "approx_kl")


class Learner:
    """PPO/A2C for ``P`` runs of one policy family over ``env`` (``P * cfg.num_envs`` copies).

    ``lam`` (a float or ``[P]``) weighs the family's diversity objective per run, ``ent_coef`` (a float or
    ``[P]``; default ``cfg.ent_coef``) the action-entropy bonus per run, ``sigma`` (a float or ``[P]``; default
    the family's ``probe_noise``) the probe noise of the entropy bound per run; ``latent=None`` redraws each
    copy's ``z`` from the prior at every episode, ``latent [P, d]`` fixes run ``p``'s policy to ``latent[p]``.
    Call :meth:`iterate` for one rollout and update; it returns per-run statistics (``[P]`` tensors).

    With ``P == 1`` the learner trains a copy of ``family`` directly (no ``vmap``, no ``functional_call``): the
    same arithmetic, less overhead per call.
    """

    def __init__(
        self,
        family: PolicyFamily,
        params: dict[str, torch.Tensor],
        env,
        cfg: PPOConfig,
        *,
        lam: float | torch.Tensor = 0.0,
        latent: torch.Tensor | None = None,
        seed: int = 0,
        total_iterations: int | None = None,
        ent_coef: float | torch.Tensor | None = None,
        sigma: float | torch.Tensor | None = None,
    ):
        self.family, self.env, self.cfg = family, env, cfg
        self.P = run_count(params)
        self.N = cfg.num_envs
        if env.num_envs != self.P * self.N:
            raise ValueError(f"env has {env.num_envs} copies; expected {self.P} runs x {self.N} envs")
        self.device = next(iter(params.values())).device
        if self.P == 1:
            self._module = copy.deepcopy(family).to(self.device)
            with torch.no_grad():
                for k, v in self._module.named_parameters():
                    v.copy_(params[k][0])
            self._leaves = dict(self._module.named_parameters())
            self.objective = _Objective(self._module, cfg)
        else:
            self._module = None
            self._leaves = params
            self.objective = _Objective(family, cfg)
        self.lam = torch.as_tensor(lam, dtype=torch.float32, device=self.device).expand(self.P).clone()
        ent = cfg.ent_coef if ent_coef is None else ent_coef
        self.ent_coef = torch.as_tensor(ent, dtype=torch.float32, device=self.device).expand(self.P).clone()
        sig = getattr(family, "probe_noise", 0.1) if sigma is None else sigma
        self.sigma = torch.as_tensor(sig, dtype=torch.float32, device=self.device).expand(self.P).clone()
        self.latent = None if latent is None else latent.to(self.device)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.opt = torch.optim.Adam(list(self._leaves.values()), lr=cfg.lr, eps=1e-5)
        self.total_iterations = total_iterations
        self.iteration = 0
        self.obs = env.reset(seed=int(seed))
        self.z = self._draw(self.P * self.N) if self.latent is None else self._fixed()
        self.ep_return = torch.zeros(self.P * self.N, device=self.device)
        self.ep_length = torch.zeros(self.P * self.N, device=self.device)

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The runs' parameters, stacked ``[P, ...]`` (views of the trained tensors when ``P == 1``)."""
        if self._module is not None:
            return {k: v.unsqueeze(0) for k, v in self._leaves.items()}
        return self._leaves

    # -- helpers -------------------------------------------------------------------------------------------

    def _draw(self, n: int) -> torch.Tensor:
        return self.family.sample_latent(n, self.generator, self.device)

    def _fixed(self) -> torch.Tensor:
        return self.latent.repeat_interleave(self.N, 0)

    def _pop(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(self.P, -1, *x.shape[1:])

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._module is not None:
            return self._module(obs, z)
        return population_forward(self.family, self._leaves, obs, z)

    def _losses(self, *args) -> tuple[torch.Tensor, torch.Tensor]:
        if self._module is not None:
            loss, stats = self.objective(*(a[0] for a in args))
            return loss.unsqueeze(0), stats.unsqueeze(0)
        params = {f"family.{k}": v for k, v in self._leaves.items()}
        return vmap(lambda p, *a: functional_call(self.objective, p, a))(params, *args)

    def set_lambda(self, lam: float | torch.Tensor) -> None:
        self.lam = torch.as_tensor(lam, dtype=torch.float32, device=self.device).expand(self.P).clone()

    # -- rollout -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def collect(self) -> dict:
        cfg, T, B = self.cfg, self.cfg.num_steps, self.P * self.N
        obs_buf = torch.empty((T, *self.obs.shape), dtype=self.obs.dtype, device=self.device)
        z_buf = torch.empty((T, *self.z.shape), device=self.device)
        act_buf = torch.empty((T, B), dtype=torch.long, device=self.device)
        logp_buf, val_buf, rew_buf, raw_buf = (torch.empty((T, B), device=self.device) for _ in range(4))
        done_buf, term_buf = (torch.empty((T, B), dtype=torch.bool, device=self.device) for _ in range(2))
        for t in range(T):
            obs, z = self.obs, self.z
            logits, value = self.forward(obs, z)
            logp_all = torch.log_softmax(logits, -1)
            action = torch.multinomial(logp_all.exp(), 1, generator=self.generator)
            next_obs, reward, terminated, truncated, final_obs = self.env.step(action.view(-1))
            raw_buf[t] = reward
            if cfg.bootstrap_truncated and bool(truncated.any()):
                _, v_final = self.forward(final_obs, z)
                reward = reward + cfg.gamma * v_final * truncated
            done = terminated | truncated
            obs_buf[t], z_buf[t], act_buf[t] = obs, z, action.view(-1)
            logp_buf[t] = logp_all.gather(1, action).view(-1)
            val_buf[t], rew_buf[t], done_buf[t], term_buf[t] = value, reward, done, terminated
            if self.latent is None:
                # a fresh draw for every copy, kept where an episode ended: each run's random stream is then
                # independent of the other runs' episode ends
                z = torch.where(done.unsqueeze(1), self._draw(B), z)
            self.obs, self.z = next_obs, z
        _, next_value = self.forward(self.obs, self.z)
        adv, ret = compute_gae(rew_buf, val_buf, done_buf, next_value, cfg.gamma, cfg.gae_lambda)
        stats = self._episode_stats(raw_buf, done_buf, term_buf)
        batch = {"obs": obs_buf, "z": z_buf, "actions": act_buf, "logp": logp_buf, "adv": adv, "returns": ret}
        return {"batch": batch, "stats": stats}

    def _episode_stats(self, raw: torch.Tensor, done: torch.Tensor, term: torch.Tensor) -> dict:
        """Per-run episode count, success rate, mean return and length of the episodes that ended in this
        rollout (returns and lengths carried over from earlier rollouts), computed after the loop."""
        T = raw.shape[0]
        steps = torch.arange(T, device=self.device).unsqueeze(1).expand_as(done)
        last_end = torch.cummax(torch.where(done, steps, -1), 0).values  # last end at or before t
        prev_end = torch.cat([torch.full_like(last_end[:1], -1), last_end[:-1]])  # strictly before t
        csum = torch.cumsum(raw, 0)
        before = torch.where(prev_end >= 0, csum.gather(0, prev_end.clamp(min=0)), -self.ep_return)
        ret = csum - before
        length = (steps - prev_end).float() + torch.where(prev_end < 0, self.ep_length, 0.0)
        fd = done.float()
        episodes = self._pop(fd.sum(0)).sum(1)
        successes = self._pop((term & (raw > 0)).float().sum(0)).sum(1)
        ret_sum = self._pop((ret * fd).sum(0)).sum(1)
        len_sum = self._pop((length * fd).sum(0)).sum(1)
        ended = last_end[-1] >= 0
        self.ep_return = torch.where(
            ended, csum[-1] - csum.gather(0, last_end[-1:].clamp(min=0))[0], self.ep_return + csum[-1]
        )
        self.ep_length = torch.where(ended, (T - 1 - last_end[-1]).float(), self.ep_length + T)
        nan = torch.full_like(episodes, float("nan"))
        some = episodes > 0
        return {
            "episodes": episodes,
            "success_rate": torch.where(some, successes / episodes.clamp(min=1), nan),
            "return": torch.where(some, ret_sum / episodes.clamp(min=1), nan),
            "length": torch.where(some, len_sum / episodes.clamp(min=1), nan),
        }

    # -- update --------------------------------------------------------------------------------------------

    def _per_run(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, P * N, ...]`` -> ``[P, T * N, ...]``."""
        T = x.shape[0]
        x = x.view(T, self.P, self.N, *x.shape[2:]).transpose(0, 1)
        return x.reshape(self.P, T * self.N, *x.shape[3:])

    def update(self, batch: dict) -> dict:
        cfg = self.cfg
        b = {k: self._per_run(v) for k, v in batch.items()}
        size = cfg.batch_size
        mb = size // cfg.num_minibatches
        m, n = cfg.probe_states, max(cfg.probe_latents, 1)
        runs = torch.arange(self.P, device=self.device).unsqueeze(1)
        totals = torch.zeros(self.P, len(STAT_NAMES), device=self.device)
        count = 0
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(size, generator=self.generator).to(self.device)
            for start in range(0, size, mb):
                idx = perm[start : start + mb]
                probe_idx = torch.randint(size, (self.P, m), generator=self.generator).to(self.device)
                probe_obs = b["obs"][runs, probe_idx]
                zq, noise = self.family.diversity_inputs(self.P * n, m, self.generator, self.device)
                zq = zq.view(self.P, n, -1)
                noise = noise.view(self.P, n, m, -1)
                loss, stats = self._losses(
                    b["obs"][:, idx],
                    b["z"][:, idx],
                    b["actions"][:, idx],
                    b["logp"][:, idx],
                    b["adv"][:, idx],
                    b["returns"][:, idx],
                    probe_obs,
                    zq,
                    noise,
                    self.lam,
                    self.ent_coef,
                    self.sigma,
                )
                self.opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                self._clip()
                self.opt.step()
                totals += stats
                count += 1
        return {name: totals[:, i] / count for i, name in enumerate(STAT_NAMES)}

    def _clip(self) -> None:
        """Per-run gradient-norm clipping (torch's clip_grad_norm_ would couple the runs). The inference network
        of the entropy bound (parameters named ``inference.*``) is clipped on its own, so that its fit never
        rescales the policy's step."""
        if not self.cfg.max_grad_norm:
            return
        lead = 0 if self._module is None else 1  # a P == 1 learner's tensors have no run dimension
        groups: dict[bool, list[torch.Tensor]] = {False: [], True: []}
        for name, p in self._leaves.items():
            if p.grad is not None:
                groups[name.startswith("inference.")].append(p.grad)
        for grads in groups.values():
            if not grads:
                continue
            sq = torch.zeros(self.P, device=self.device)
            for g in grads:
                sq += g.pow(2).reshape(self.P, -1).sum(1)
            scale = (self.cfg.max_grad_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale.view(*([self.P] if not lead else []), *([1] * (g.dim() - 1 + lead))))

    def iterate(self) -> dict:
        """One rollout and one update; returns per-run statistics and losses (``[P]`` tensors)."""
        if self.cfg.anneal_lr and self.total_iterations:
            frac = 1.0 - self.iteration / self.total_iterations
            for group in self.opt.param_groups:
                group["lr"] = self.cfg.lr * max(frac, 0.0)
        out = self.collect()
        losses = self.update(out["batch"])
        self.iteration += 1
        return {**out["stats"], **losses}

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps per run per iteration."""
        return self.cfg.batch_size

    # -- checkpointing -------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        if not hasattr(self.env, "state_dict"):
            raise TypeError(f"{type(self.env).__name__} cannot be checkpointed mid-run")
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "opt": self.opt.state_dict(),
            "env": self.env.state_dict(),
            "obs": self.obs.clone(),
            "z": self.z.clone(),
            "ep_return": self.ep_return.clone(),
            "ep_length": self.ep_length.clone(),
            "generator": self.generator.get_state(),
            "iteration": self.iteration,
            "lam": self.lam.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for k, v in self._leaves.items():
                v.copy_(state["params"][k].view_as(v))
        self.opt.load_state_dict(state["opt"])
        self.env.load_state_dict(state["env"])
        self.obs, self.z = state["obs"].clone(), state["z"].clone()
        self.ep_return, self.ep_length = state["ep_return"].clone(), state["ep_length"].clone()
        self.generator.set_state(state["generator"])
        self.iteration = int(state["iteration"])
        self.lam = state["lam"].clone()


@torch.no_grad()
def evaluate_latents(
    family: PolicyFamily,
    params: dict[str, torch.Tensor],
    env,
    latents: torch.Tensor,
    *,
    max_steps: int,
    seed: int = 0,
    greedy: bool = False,
) -> dict[str, torch.Tensor]:
    """One episode per copy of ``env``, copy ``c`` acting with run ``c // (env.num_envs // P)``'s parameters
    and latent ``latents[c]``; returns ``success [C]``, ``length [C]`` (env steps the episode used) and ``return``.

    All copies step together until each has finished its first episode (same-step autoreset: later episodes are
    ignored and cost nothing in the accounting).
    """
    C = env.num_envs
    gen = torch.Generator().manual_seed(int(seed))
    obs = env.reset(seed=int(seed))
    device = latents.device
    finished = torch.zeros(C, dtype=torch.bool, device=device)
    success = torch.zeros(C, device=device)
    length = torch.zeros(C, device=device)
    ret = torch.zeros(C, device=device)
    for _ in range(max_steps):
        logits, _ = population_forward(family, params, obs, latents)
        if greedy:
            action = logits.argmax(-1)
        else:
            action = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)
        obs, reward, terminated, truncated, _ = env.step(action)
        live = ~finished
        length += live.float()
        ret += reward * live
        success += (terminated & (reward > 0) & live).float()
        finished |= terminated | truncated
        if bool(finished.all()):
            break
    return {"success": success, "length": length, "return": ret}
