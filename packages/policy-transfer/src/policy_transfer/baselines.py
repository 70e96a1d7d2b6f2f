"""Baselines in the same interface as :class:`~policy_transfer.distribution.LatentPolicy`.

- *Latent family at lambda = 0*: ``LatentPolicy`` trained without the entropy bound (:func:`single_policy`; the
  first revision called this "the single policy", but it still conditions on z and its random initialisation
  already makes its policies differ).
- :class:`SinglePolicy`: one policy, no latent (the latent is a constant 0), optionally trained with a larger
  action-entropy bonus: the maximum-entropy baseline the paper argues against.
- :class:`BayesianPolicy`: a distribution over policies in *parameter* space, q(W) = N(mu, sigma^2) over the
  actor's last layer (on the tabular GridWorld that layer is the whole logits table). Its entropy is closed-form,
  H(q) = sum log sigma + n/2 log(2 pi e); the diversity objective is that entropy per parameter, so lambda has
  the same order of magnitude whatever the table's size. The latent is the standard normal draw eps
  (W = mu + sigma * eps), so sampling and acting look exactly like the latent family.
- :class:`EnsemblePolicy`: K independent heads (the whole table when tabular; heads over a shared trunk on
  vectors); z is the one-hot index of a head drawn uniformly. No diversity term. :meth:`EnsemblePolicy.heads`
  gives the K distinct latents (the K policies without repeats).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .distribution import LatentPolicy
from .policy import ObsSpec, PolicyFamily, Trunk, gaussian_entropy, ortho_, rows


def single_policy(spec: ObsSpec, n_actions: int, **kwargs) -> LatentPolicy:
    """The lambda = 0 baseline: the same family as the distribution, trained with lambda = 0."""
    return LatentPolicy(spec, n_actions, **kwargs)


class SinglePolicy(LatentPolicy):
    """One policy: the latent family's parameters with ``latent_dim = 1`` and ``z`` always 0, so the hypernetwork
    term is inert and every draw from the "prior" is the same policy. Train it with ``probe_latents = 0`` (it has
    no diversity to measure) and, for the maximum-entropy baseline, a larger ``ent_coef``."""

    def __init__(self, spec: ObsSpec, n_actions: int, *, hidden: int = 64, z_in_trunk: bool = False):
        super().__init__(spec, n_actions, latent_dim=1, hidden=hidden, hyper_init=0.0, z_in_trunk=z_in_trunk)

    def sample_latent(self, n, generator=None, device="cpu"):
        return torch.zeros(n, 1, device=device)


class BayesianPolicy(PolicyFamily):
    """Bayes-by-backprop over the actor's last layer: ``logits = h(s) @ (mu + sigma * eps) + b``."""

    def __init__(self, spec: ObsSpec, n_actions: int, *, hidden: int = 64, init_std: float = 0.3):
        super().__init__()
        if init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        self.spec, self.n_actions = spec, n_actions
        self.actor_trunk = Trunk(spec, hidden)
        self.critic_trunk = Trunk(spec, hidden)
        f = self.actor_trunk.out_features
        self.features = f
        self.latent_dim = f * n_actions
        self.mu = nn.Parameter(torch.zeros(f, n_actions))
        if spec.kind == "vector":
            ortho_(self.mu, 0.01)
        self.log_std = nn.Parameter(torch.full((f, n_actions), math.log(init_std)))
        self.bias = nn.Parameter(torch.zeros(n_actions))
        self.v_weight = nn.Parameter(torch.zeros(f, 1))
        if spec.kind == "vector":
            ortho_(self.v_weight, 1.0)
        self.v_bias = nn.Parameter(torch.zeros(1))

    def sample_latent(self, n, generator=None, device="cpu"):
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    def forward(self, obs, z):
        h = self.actor_trunk(obs)
        eps = z.view(-1, self.features, self.n_actions)
        if self.spec.kind == "index":
            # only the sampled row of the table is used: mu[s] + sigma[s] * eps[s]
            noise = eps.gather(1, obs.view(-1, 1, 1).expand(-1, 1, self.n_actions)).squeeze(1)
            logits = self.mu[obs] + torch.exp(self.log_std[obs]) * noise + self.bias
        else:
            logits = h @ self.mu + torch.einsum("nf,fa,nfa->na", h, torch.exp(self.log_std), eps) + self.bias
        value = rows(self.critic_trunk(obs), self.v_weight)[:, 0] + self.v_bias
        return logits, value

    def entropy(self) -> torch.Tensor:
        """Closed-form entropy of q(W) in nats."""
        return self.log_std.sum() + gaussian_entropy(self.latent_dim)

    def diversity(self, probe_obs, zq, noise, sigma=None):
        return {
            "objective": self.log_std.mean(),
            "aux_loss": torch.zeros((), device=self.log_std.device),
            "bound": self.entropy(),
        }


class EnsemblePolicy(PolicyFamily):
    """K heads; ``z`` is a one-hot head index (the prior draws it uniformly)."""

    def __init__(
        self, spec: ObsSpec, n_actions: int, heads: int = 8, *, hidden: int = 64, head_init: float = 0.1
    ):
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.spec, self.n_actions, self.latent_dim = spec, n_actions, heads
        self.actor_trunk = Trunk(spec, hidden)
        self.critic_trunk = Trunk(spec, hidden)
        f = self.actor_trunk.out_features
        if spec.kind == "index":
            w = torch.randn(f, n_actions * heads) * head_init
        else:
            w = torch.cat([ortho_(torch.empty(f, n_actions), 0.01) for _ in range(heads)], 1)
            w = w.view(f, heads, n_actions).transpose(1, 2).reshape(f, n_actions * heads)
        self.pi_heads = nn.Parameter(w)
        self.pi_bias = nn.Parameter(torch.zeros(heads, n_actions))
        v = torch.zeros(f, heads)
        if spec.kind == "vector":
            v = torch.cat([ortho_(torch.empty(f, 1), 1.0) for _ in range(heads)], 1)
        self.v_heads = nn.Parameter(v)
        self.v_bias = nn.Parameter(torch.zeros(heads))

    def sample_latent(self, n, generator=None, device="cpu"):
        k = torch.randint(self.latent_dim, (n,), generator=generator)
        return nn.functional.one_hot(k, self.latent_dim).float().to(device)

    def heads(self, device="cpu") -> torch.Tensor:
        """The K distinct latents, one per head: ``[K, K]`` (the identity)."""
        return torch.eye(self.latent_dim, device=device)

    def forward(self, obs, z):
        h = self.actor_trunk(obs)
        logits = (rows(h, self.pi_heads).view(-1, self.n_actions, self.latent_dim) * z.unsqueeze(1)).sum(-1)
        logits = logits + z @ self.pi_bias
        value = (rows(self.critic_trunk(obs), self.v_heads) * z).sum(-1) + z @ self.v_bias
        return logits, value
