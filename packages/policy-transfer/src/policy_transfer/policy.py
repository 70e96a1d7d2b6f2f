"""The interface every distribution over policies implements, and the layers they share.

A *policy family* is a distribution over policies written as a latent variable: draw ``z`` from the family's
prior, act with ``pi(a | s, z)``. Its methods, all pure functions of the module's parameters (so that a
population of independent families can be trained at once with ``torch.func.vmap``):

- ``sample_latent(n, generator)``: ``n`` draws of ``z`` from the prior, ``[n, latent_dim]``;
- ``forward(obs, z) -> (logits [N, A], value [N])``: the conditioned policy and its critic;
- ``diversity(probe_obs, zq, noise, sigma=None) -> dict``: the family's diversity term (``sigma``: the probe
  noise of this run, overriding the family's own; a population trains runs with different sigmas). ``objective`` (maximised with weight
  lambda: the paper's E_z[return] + lambda * H), ``aux_loss`` (minimised with weight 1: e.g. the inference
  network's fit), ``bound`` (an estimate in nats, for logging);
- ``diversity_inputs(n, m, generator)``: the random inputs ``diversity`` needs, drawn outside ``vmap``.

Observations come in two kinds (:class:`ObsSpec`): ``index`` (a cell index: the tabular GridWorld; layers then
gather a row per cell, which is a one-hot input without the one-hot) and ``vector`` (float features: MiniGrid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ObsSpec:
    """``kind`` is ``"index"`` (``size`` = number of cells) or ``"vector"`` (``size`` = feature dimension)."""

    kind: str
    size: int

    def __post_init__(self):
        if self.kind not in ("index", "vector"):
            raise ValueError(f"ObsSpec.kind must be 'index' or 'vector', got {self.kind!r}")
        if self.size < 1:
            raise ValueError(f"ObsSpec.size must be >= 1, got {self.size}")

    @classmethod
    def of(cls, env) -> ObsSpec:
        """The spec of a torch vector env (see :mod:`policy_transfer.envs`)."""
        if getattr(env, "obs_kind", "index") == "index":
            return cls("index", int(env.n_obs))
        return cls("vector", int(env.obs_dim))


def rows(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight`` for features ``x [N, F]``; ``weight[x]`` for cell indices ``x [N]`` (a one-hot input)."""
    if x.dtype in (torch.int64, torch.int32):
        return weight[x]
    return x @ weight


def ortho_(weight: torch.Tensor, gain: float) -> torch.Tensor:
    """Orthogonal initialisation (CleanRL's), in place; returns the tensor."""
    with torch.no_grad():
        nn.init.orthogonal_(weight, gain)
    return weight


class Trunk(nn.Module):
    """Feature extractor: the identity on cell indices; a tanh MLP (CleanRL's 64-64) on vectors.

    ``latent_dim > 0`` concatenates ``z`` to a vector input (the policy conditioned on z through its input).
    """

    def __init__(self, spec: ObsSpec, hidden: int = 64, latent_dim: int = 0):
        super().__init__()
        self.spec = spec
        self.latent_dim = latent_dim if spec.kind == "vector" else 0
        if spec.kind == "index":
            self.net = None
            self.out_features = spec.size
        else:
            self.net = nn.Sequential(
                nn.Linear(spec.size + self.latent_dim, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
            )
            for m in self.net:
                if isinstance(m, nn.Linear):
                    ortho_(m.weight, math.sqrt(2))
                    nn.init.zeros_(m.bias)
            self.out_features = hidden

    def forward(self, obs: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.net is None:
            return obs
        if self.latent_dim:
            obs = torch.cat([obs, z], dim=-1)
        return self.net(obs)


class PolicyFamily(nn.Module):
    """Base class: see the module docstring. Subclasses set ``n_actions`` and ``latent_dim``."""

    n_actions: int
    latent_dim: int

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def diversity_inputs(
        self, n: int, m: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` prior latents and ``[n, m, n_actions]`` standard normal noise for ``m`` probe states."""
        zq = self.sample_latent(n, generator, device)
        noise = torch.randn(n, m, self.n_actions, generator=generator).to(device)
        return zq, noise

    def diversity(
        self,
        probe_obs: torch.Tensor,
        zq: torch.Tensor,
        noise: torch.Tensor,
        sigma: torch.Tensor | None = None,
    ) -> dict:
        """No diversity term: objective, aux loss and bound are zero."""
        zero = torch.zeros((), device=noise.device)
        return {"objective": zero, "aux_loss": zero, "bound": zero}

    def action_probs(self, probe_obs: torch.Tensor, zq: torch.Tensor) -> torch.Tensor:
        """``pi_z(. | s)`` for every latent in ``zq [n, d]`` and probe state: ``[n, m, n_actions]``."""
        n, m = zq.shape[0], probe_obs.shape[0]
        obs = probe_obs.repeat(n) if probe_obs.dim() == 1 else probe_obs.repeat(n, 1)
        logits, _ = self(obs, zq.repeat_interleave(m, 0))
        return torch.softmax(logits, -1).view(n, m, -1)


def gaussian_log_prob(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag exp(log_std)^2), summed over the last dimension."""
    return (-0.5 * ((z - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(dim: int, std: float | torch.Tensor = 1.0) -> float | torch.Tensor:
    """Entropy (nats) of an isotropic Gaussian in ``dim`` dimensions (a tensor when ``std`` is one)."""
    if isinstance(std, torch.Tensor):
        return 0.5 * dim * math.log(2 * math.pi * math.e) + dim * torch.log(std)
    return 0.5 * dim * math.log(2 * math.pi * math.e * std**2)
