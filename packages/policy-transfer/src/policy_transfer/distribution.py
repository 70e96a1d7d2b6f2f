"""The distribution over policies (the paper's contribution, reconstructed through VFunc).

Generator (Shrivastava et al. 2019, after Bachman et al. 2018):

    z ~ p(z) = N(0, I_d),      pi_theta(a | s, z) = softmax(g_theta(s, z))

with ``g`` a *hypernetwork head*: the last layer's weights are an affine function of ``z``,
``logits = h(s)^T (B + sum_j z_j W_j) + b``. On the tabular GridWorld ``h(s)`` is the one-hot cell, so the whole
logits table is ``L(z) = B + W z`` (one linear map from z to ``|S| x |A|``); on MiniGrid ``h`` is an MLP over the
observation (optionally with ``z`` concatenated to its input).

Objective (VFunc):  max_theta  E_z[ J(pi_z) ] + lambda * H[p(pi)].

The entropy of the distribution over policies is measured through the policies' outputs on ``m`` probe states
(drawn from recent rollouts), with Gaussian noise so that it is finite:

    phi(z) = [pi_z(. | s_1), ..., pi_z(. | s_m)] + eps,      eps ~ N(0, sigma^2 I)
    H[phi] = I(z; phi) + H(eps)  >=  H(z) + E_{z, eps}[ log q_psi(z | phi(z)) ] + H(eps)        (Barber-Agakov)

``q_psi`` (:class:`InferenceNet`) is a Gaussian recognition network over the *set* of (probe state, noisy action
distribution) pairs, so the probe states can change from one update to the next. The bound is differentiable in
theta through phi: no reinforcement learning is needed for the entropy term. theta ascends
``lambda * E log q(z | phi_theta(z))``; psi ascends ``E log q(z | phi)`` (with phi detached) whatever lambda is,
so the bound is measured for every condition, lambda = 0 included.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .policy import ObsSpec, PolicyFamily, Trunk, gaussian_entropy, gaussian_log_prob, ortho_, rows


class InferenceNet(nn.Module):
    """q_psi(z | {(s_i, phi_i)}_{i=1..m}): a permutation-invariant encoder of probe pairs, Gaussian output.

    Each pair is embedded (cell indices: a per-cell linear map of the action distribution to ``embed`` numbers
    and a per-cell code; vectors: the observation and the action distribution concatenated), mapped to
    ``hidden`` units with ReLU, averaged over the probes, and an MLP gives the mean and log-std of a diagonal
    Gaussian over ``z``.
    """

    def __init__(self, spec: ObsSpec, n_actions: int, latent_dim: int, hidden: int = 64, embed: int = 8):
        super().__init__()
        self.spec, self.n_actions, self.k = spec, n_actions, embed
        if spec.kind == "index":
            self.cell_map = nn.Parameter(torch.randn(spec.size, n_actions * embed) / math.sqrt(n_actions))
            self.cell_code = nn.Parameter(torch.randn(spec.size, embed) * 0.1)
            self.embed = nn.Linear(2 * embed, hidden)
        else:
            self.embed = nn.Linear(spec.size + n_actions, hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, probe_obs: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``probe_obs [m]`` or ``[m, F]``, ``phi [n, m, A]`` -> mean, log-std ``[n, d]``."""
        n, m, a = phi.shape
        if self.spec.kind == "index":
            w = self.cell_map[probe_obs].view(m, a, self.k)
            mapped = torch.einsum("nma,mak->nmk", phi, w)
            x = torch.cat([mapped, self.cell_code[probe_obs].expand(n, m, self.k)], dim=-1)
        else:
            x = torch.cat([probe_obs.expand(n, m, -1), phi], dim=-1)
        out = self.head(torch.relu(self.embed(x)).mean(1))
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.clamp(-5.0, 2.0)

    def log_prob(self, z: torch.Tensor, probe_obs: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        mean, log_std = self(probe_obs, phi)
        return gaussian_log_prob(z, mean, log_std)


def entropy_lower_bound(
    z: torch.Tensor, log_q: torch.Tensor, *, phi_dim: int, noise_std: float | torch.Tensor
) -> dict[str, torch.Tensor]:
    """The bound from samples: ``z [n, d]`` drawn from N(0, I) and ``log_q [n] = log q(z | phi(z))``.

    Returns ``mi`` (H(z) + E log q, a lower bound on I(z; phi)) and ``entropy`` (``mi + H(eps)``, a lower bound on
    H[phi], the entropy of the distribution over policies seen through ``phi_dim`` noisy probe outputs).
    """
    mi = gaussian_entropy(z.shape[-1]) + log_q.mean()
    return {"mi": mi, "entropy": mi + gaussian_entropy(phi_dim, noise_std)}


class LatentPolicy(PolicyFamily):
    """A distribution over policies: z ~ N(0, I_d), pi(a | s, z) with a hypernetwork head, critic V(s, z), and
    the inference network of the entropy bound.

    >>> fam = LatentPolicy(ObsSpec("index", 81), n_actions=4, latent_dim=4)
    >>> z = fam.sample_latent(8)
    >>> logits, value = fam(torch.zeros(8, dtype=torch.long), z)

    ``lambda = 0`` (the weight is the learner's) gives the single-policy baseline with the same parameters.
    ``hyper_init`` is the standard deviation of the hypernetwork weights at initialisation: small, so that the
    policies start nearly identical and diversity has to be earned by the entropy term.
    """

    def __init__(
        self,
        spec: ObsSpec,
        n_actions: int,
        latent_dim: int = 4,
        *,
        hidden: int = 64,
        hyper_init: float = 0.1,
        z_in_trunk: bool = False,
        probe_noise: float = 0.1,
        inference_hidden: int = 64,
    ):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.spec, self.n_actions, self.latent_dim = spec, n_actions, latent_dim
        self.probe_noise = float(probe_noise)
        zt = latent_dim if z_in_trunk else 0
        self.actor_trunk = Trunk(spec, hidden, zt)
        self.critic_trunk = Trunk(spec, hidden, zt)
        f = self.actor_trunk.out_features
        scale = hyper_init if spec.kind == "index" else hyper_init / math.sqrt(f)
        self.pi_base = nn.Parameter(torch.zeros(f, n_actions))
        if spec.kind == "vector":
            ortho_(self.pi_base, 0.01)
        self.pi_hyper = nn.Parameter(torch.randn(f, n_actions * latent_dim) * scale)
        self.pi_bias = nn.Parameter(torch.zeros(n_actions))
        self.v_base = nn.Parameter(torch.zeros(f, 1))
        if spec.kind == "vector":
            ortho_(self.v_base, 1.0)
        self.v_hyper = nn.Parameter(torch.zeros(f, latent_dim))
        self.v_bias = nn.Parameter(torch.zeros(1))
        self.inference = InferenceNet(spec, n_actions, latent_dim, inference_hidden)

    def sample_latent(self, n, generator=None, device="cpu"):
        return torch.randn(n, self.latent_dim, generator=generator).to(device)

    def logits(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.actor_trunk(obs, z)
        hyper = rows(h, self.pi_hyper).view(-1, self.n_actions, self.latent_dim)
        return rows(h, self.pi_base) + (hyper * z.unsqueeze(1)).sum(-1) + self.pi_bias

    def value(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.critic_trunk(obs, z)
        return rows(h, self.v_base)[:, 0] + (rows(h, self.v_hyper) * z).sum(-1) + self.v_bias

    def forward(self, obs, z):
        return self.logits(obs, z), self.value(obs, z)

    def action_probs(self, probe_obs, zq):
        n, m = zq.shape[0], probe_obs.shape[0]
        obs = probe_obs.repeat(n) if probe_obs.dim() == 1 else probe_obs.repeat(n, 1)
        return torch.softmax(self.logits(obs, zq.repeat_interleave(m, 0)), -1).view(n, m, -1)

    def diversity(self, probe_obs, zq, noise, sigma=None):
        """The entropy lower bound on ``m = probe_obs.shape[0]`` probe states, for prior draws ``zq [n, d]`` and
        standard normal ``noise [n, m, A]``; ``sigma`` (a float or a 0-d tensor) replaces ``probe_noise``."""
        std = self.probe_noise if sigma is None else sigma
        phi = self.action_probs(probe_obs, zq) + std * noise
        log_q = self.inference.log_prob(zq, probe_obs, phi)  # gradient to theta (and psi)
        log_q_psi = self.inference.log_prob(zq, probe_obs, phi.detach())  # psi's fit, whatever lambda is
        b = entropy_lower_bound(zq, log_q.detach(), phi_dim=phi.shape[1] * phi.shape[2], noise_std=std)
        return {
            "objective": log_q.mean(),
            "aux_loss": -log_q_psi.mean(),
            "bound": b["entropy"],
            "mi": b["mi"],
        }
