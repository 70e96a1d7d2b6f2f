"""The trainer's figures: learning curves on the targets, coverage@K bars, the MiniGrid transfer."""

from __future__ import annotations

import numpy as np

COLORS = {
    "distribution": "tab:blue",
    "distribution-sample": "tab:cyan",
    "single": "tab:orange",
    "bayes": "tab:green",
    "ensemble": "tab:purple",
    "scratch": "tab:gray",
}


def _band(ax, x, curves, label, color):
    curves = np.asarray(curves, dtype=float)  # [seeds, iterations]
    mean = curves.mean(0)
    se = curves.std(0, ddof=1) / np.sqrt(curves.shape[0]) if curves.shape[0] > 1 else np.zeros_like(mean)
    ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.2, lw=0)


def grid_curves(res: dict, threshold: float):
    from paperkit.plotting import figure

    fig, axes = figure(2, 1, width=4.6)
    for ax, key, title in zip(
        axes[0], ("curve_near", "curve_far"), ("near targets (mean)", "far goal (control)")
    ):
        for cond, r in res.items():
            curves = np.asarray(r[key])
            its = curves.shape[1]
            offset = float(np.mean(r["offset"]))
            x = offset + r["steps_per_iteration"] * np.arange(1, its + 1)
            _band(ax, x, curves, cond, COLORS.get(cond))
        ax.axhline(threshold, color="k", lw=0.8, ls="--")
        ax.set_xlabel("target environment steps")
        ax.set_ylabel("evaluation success rate")
        ax.set_title(f"GridWorld transfer: {title}", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.text(
        0.5,
        -0.1,
        "select transfer: the zero-shot scoring of K latents is counted (curves start after it); "
        "shaded: +- one standard error over seeds",
        ha="center",
        fontsize=7,
    )
    return fig


def coverage_bars(summary: dict, k: int):
    from paperkit.plotting import figure

    conds = [c for c in summary if "coverage" in summary[c] and c != "distribution-sample"]  # same models
    fig, axes = figure(2, 1, width=4.2)
    for ax, metric, label in zip(
        axes[0],
        ("coverage_exact", "coverage"),
        (f"exact coverage@{k} of near targets", f"sampled coverage@{k} (rewards luck)"),
    ):
        means = [summary[c][metric]["mean"] for c in conds]
        lo = [summary[c][metric]["mean"] - summary[c][metric]["lo"] for c in conds]
        hi = [summary[c][metric]["hi"] - summary[c][metric]["mean"] for c in conds]
        ax.bar(range(len(conds)), means, yerr=[lo, hi], color=[COLORS.get(c) for c in conds], capsize=3)
        ax.set_xticks(range(len(conds)), conds, rotation=25, fontsize=8)
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.05)
        ax.set_title("95% bootstrap intervals over seeds", fontsize=9)
    return fig


RING_COLORS = {
    "distribution": "tab:blue",
    "lambda0": "tab:orange",
    "single": "tab:brown",
    "entropy": "tab:red",
    "ensemble": "tab:purple",
    "scratch": "tab:gray",
}


def ring_transfer(moved: dict, threshold: float):
    """Ring transfer: mean exact success of the fine-tuned policies against env steps (scoring counted)."""
    from paperkit.plotting import figure

    fig, axes = figure(2, 1, width=4.2)
    for ax, setting, title in zip(
        axes[0], ("near", "far"), ("near targets (mean of two)", "far task (reversed)")
    ):
        for arm, row in moved.items():
            r = row[setting]
            y = np.asarray(r["curve"])
            x = r["steps_per_iteration"] * np.arange(len(y))
            ax.plot(x, y, label=arm, color=RING_COLORS.get(arm))
        ax.axhline(threshold, color="k", lw=0.8, ls="--")
        ax.set_xlabel("fine-tuning env steps (scoring not shown)")
        ax.set_ylabel("exact success, mean over seeds")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"ring transfer: {title}", fontsize=9)
    axes[0][0].legend(fontsize=7, loc="lower right")
    return fig


def ring_bars(arms: dict, cfg):
    """The diversity experiment: exact coverage@K, source success, visits between/within latents per arm."""
    from paperkit.plotting import figure

    names = list(arms)
    panels = (
        ("coverage", f"exact coverage@{cfg.select_k} (threshold {cfg.ring_threshold:g})", (0, 1.05)),
        ("source_success", "exact source success", (0, 1.05)),
        ("visits_between", "I(z; visited cell), nats", None),
        ("visits_within", "visit entropy within a latent, nats", None),
    )
    fig, axes = figure(len(panels), 1, width=3.2)
    for ax, (metric, label, ylim) in zip(axes[0], panels):
        mean = [arms[a][metric]["mean"] for a in names]
        lo = [np.nan_to_num(arms[a][metric]["mean"] - arms[a][metric]["lo"]) for a in names]
        hi = [np.nan_to_num(arms[a][metric]["hi"] - arms[a][metric]["mean"]) for a in names]
        ax.bar(range(len(names)), mean, yerr=[lo, hi], color=[RING_COLORS.get(a) for a in names], capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
        ax.set_title(label, fontsize=9)
        if ylim:
            ax.set_ylim(*ylim)
    fig.suptitle("ring task: every arm on fresh test seeds (95% t intervals over seeds)", fontsize=9, y=1.04)
    return fig


def minigrid_curves(res: dict, threshold: float):
    from paperkit.plotting import figure

    fig, axes = figure(1, 1, width=5.0)
    ax = axes[0][0]
    for cond, r in res.items():
        curves = np.asarray(r["curve"])
        offset = float(np.mean(r["offset"]))
        x = offset + r["steps_per_iteration"] * np.arange(1, curves.shape[1] + 1)
        _band(ax, x, curves, cond, COLORS.get(cond))
    ax.axhline(threshold, color="k", lw=0.8, ls="--")
    ax.set_xlabel("target environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title("MiniGrid moved goal (partially observable)")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def source_visits(res: dict, source, start):
    """Visit frequencies of K sampled policies (first seed) on the source task, one row per condition."""
    from paperkit.plotting import figure

    conds = [
        c for c in ("distribution", "single", "bayes", "ensemble") if c in res and "source_visits" in res[c]
    ]
    k = min(4, len(res[conds[0]]["source_visits"])) if conds else 0
    fig, axes = figure(k, len(conds), width=1.9, height=1.9)
    for i, cond in enumerate(conds):
        for j in range(k):
            ax = axes[i][j]
            ax.grid(False)
            ax.imshow(np.asarray(res[cond]["source_visits"][j]) ** 0.5, cmap="Blues")
            ax.plot(source[1], source[0], "r*", ms=8)
            ax.plot(start[1], start[0], "ko", ms=4)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(cond, fontsize=9)
    if conds:
        fig.suptitle(
            "source task: where K sampled policies go (first seed; sqrt of visit frequency)", fontsize=9
        )
    return fig
