"""The noisy parabola: Polyak-Ruppert averaging in the simplest setting (the paper's opening toy, Sec. 3.1).

Loss ``L(theta) = a/2 * theta^2``; at batch ``kappa * B`` (B = 1 here) a step of SGD sees the gradient

    g = a * theta + gamma * (theta - zeta) + sigma * mean of kappa unit-variance noises

(so the noise variance falls as 1/batch; ``gamma > 0`` couples the model to its EMA as in BYOL), takes
``theta <- theta - kappa * lr * g`` (the linear scaling rule for SGD), and the EMA moves with
``zeta <- rho_hat * zeta + (1 - rho_hat) * theta``. The three arms differ only in ``rho_hat``: ``rho`` fixed,
``rho ** kappa`` (the EMA Scaling Rule), and ``1 - kappa (1 - rho)``.

Every kappa sees the *same* per-sample noise (common random numbers: the noise of a batch is the mean of the
per-sample noises it contains), so differences between kappas come from the scaling, not from Monte-Carlo
noise. Seeds and arms are one tensor ``[arms, seeds]``; the loop runs over steps only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from paperkit.ema import scale_momentum

ARMS = ("none", "exp", "linear")
ARM_LABELS = {"none": "rho fixed", "exp": "rho ** kappa (rule)", "linear": "1 - kappa (1 - rho)"}


@dataclass
class ParabolaResult:
    samples: torch.Tensor  # [G] grid of samples seen
    mean: dict[str, dict[int, torch.Tensor]]  # arm -> kappa -> [G] mean of zeta over seeds
    std: dict[str, dict[int, torch.Tensor]]
    gap: dict[
        str, dict[int, float]
    ]  # arm -> kappa -> sup over the grid of max(|d mean|, |d std|) to kappa = 1
    group_gap: dict[str, dict[int, list[float]]] | None = None  # the same gap within each group of seeds


def simulate(
    kappas: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    *,
    seeds: int = 2000,
    base_steps: int = 20000,
    lr: float = 0.01,
    rho: float = 0.999,
    curvature: float = 1.0,
    coupling: float = 0.0,
    noise: float = 1.0,
    theta0: float = 1.0,
    seed: int = 0,
    chunk: int = 2048,
    arms: tuple[str, ...] = ARMS,
    groups: int = 1,
) -> ParabolaResult:
    """Simulate every arm at every kappa; ``groups`` > 1 also splits the seeds into that many disjoint groups
    (independent replicates) and measures the gap within each (``group_gap``), for intervals over them."""
    if groups < 1 or seeds % groups:
        raise ValueError(f"seeds ({seeds}) must split into {groups} equal groups")
    kappas = tuple(sorted(set(int(k) for k in kappas)))
    if kappas[0] != 1:
        raise ValueError("kappas must include 1 (the reference)")
    kmax = kappas[-1]
    chunk = max(kmax, chunk - chunk % kmax)
    if base_steps % chunk:
        base_steps += chunk - base_steps % chunk  # whole chunks, so every kappa ends on the same sample count
    grid = torch.arange(kmax, base_steps + 1, kmax, dtype=torch.float64)
    means: dict[str, dict[int, torch.Tensor]] = {a: {} for a in arms}
    stds: dict[str, dict[int, torch.Tensor]] = {a: {} for a in arms}
    g_means: dict[str, dict[int, torch.Tensor]] = {a: {} for a in arms}  # [G, groups]
    g_stds: dict[str, dict[int, torch.Tensor]] = {a: {} for a in arms}
    for kappa in kappas:
        rho_hat = torch.tensor([scale_momentum(rho, kappa, a) for a in arms], dtype=torch.float64)[:, None]
        theta = torch.full((len(arms), seeds), float(theta0), dtype=torch.float64)
        zeta = theta.clone()
        gen = torch.Generator().manual_seed(seed)  # same per-sample noise for every kappa
        record_every = kmax // kappa
        snaps = []
        step_lr = kappa * lr
        for _ in range(base_steps // chunk):
            xi = torch.randn(chunk, seeds, generator=gen, dtype=torch.float64)
            xi = (
                xi.view(chunk // kappa, kappa, seeds).mean(1) * noise
            )  # batch noise: variance noise^2 / kappa
            for k in range(chunk // kappa):
                g = curvature * theta + coupling * (theta - zeta) + xi[k]
                theta = theta - step_lr * g
                zeta = torch.lerp(zeta, theta, 1.0 - rho_hat)
                if (k + 1) % record_every == 0:
                    snaps.append(zeta)
        z = torch.stack(snaps)  # [G, arms, seeds]
        for i, a in enumerate(arms):
            means[a][kappa] = z[:, i].mean(-1)
            stds[a][kappa] = z[:, i].std(-1)
            zg = z[:, i].reshape(z.shape[0], groups, seeds // groups)
            g_means[a][kappa], g_stds[a][kappa] = zg.mean(-1), zg.std(-1)
    ref = arms[0]
    gap = {
        a: {
            k: float(
                torch.maximum((means[a][k] - means[ref][1]).abs(), (stds[a][k] - stds[ref][1]).abs()).max()
            )
            for k in kappas
        }
        for a in arms
    }
    group_gap = {
        a: {
            k: torch.maximum((g_means[a][k] - g_means[ref][1]).abs(), (g_stds[a][k] - g_stds[ref][1]).abs())
            .amax(0)
            .tolist()
            for k in kappas
        }
        for a in arms
    }
    return ParabolaResult(grid, means, stds, gap, group_gap)


def plot(result: ParabolaResult, arms: tuple[str, ...] = ARMS):
    from paperkit.plotting import figure

    fig, axes = figure(len(arms) + 1, 1)
    kappas = sorted(result.mean[arms[0]])
    cmap = __import__("matplotlib").colormaps["viridis"]
    for ax, a in zip(axes[0], arms):
        for i, k in enumerate(kappas):
            c = cmap(i / max(1, len(kappas) - 1))
            m, s = result.mean[a][k].numpy(), result.std[a][k].numpy()
            x = result.samples.numpy()
            ax.plot(x, m, color=c, lw=1.2, label=f"kappa={k}")
            ax.fill_between(x, m - s, m + s, color=c, alpha=0.12)
        ax.set_title(ARM_LABELS[a])
        ax.set_xlabel("samples seen")
    axes[0][0].set_ylabel("EMA iterate zeta (mean +- std over seeds)")
    axes[0][0].legend(fontsize=7)
    ax = axes[0][-1]
    for a in arms:
        ks = [k for k in kappas if k > 1]
        ax.plot(ks, [max(result.gap[a][k], 1e-12) for k in ks], marker="o", label=ARM_LABELS[a])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("kappa")
    ax.set_ylabel("largest gap to kappa = 1")
    ax.yaxis.set_label_position("right")
    ax.legend(fontsize=7)
    return fig
