"""Load a finished run's policies, measure them exactly, and render their rollouts as a frame strip.

    python -m policy_transfer.evaluate RUN_DIR                         # exact source success per latent
    python -m policy_transfer.evaluate RUN_DIR --render strip.png      # + one row of frames per latent
    python -m policy_transfer.evaluate RUN_DIR --arm ensemble --run 3 --latents 8 --sample

A run saves the pretrained parameters of every arm (``checkpoints/ring--test`` for the ring, ``grid--pretrain``
for the open room) with the arms' recipes; :func:`load_policy` rebuilds the family from the run's
``config.json`` and loads them. A missing run folder, a run without saved policies, an unknown arm or a corrupt
checkpoint is a one-line error (exit 2). The strip needs only matplotlib (no video dependencies): row ``i`` is
latent ``i``'s rollout from the start, one frame per step until the goal or the horizon.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

KEYS = ("ring/test", "grid/pretrain")


class EvaluateError(ValueError):
    """A run folder that holds no loadable policy, or a bad request."""


def _config(run_dir: Path):
    from paperkit.config import ConfigError, from_mapping

    from .config import Config

    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
        return Config(**from_mapping(Config, data, source=str(path)))
    except FileNotFoundError:
        raise EvaluateError(f"{run_dir} is not a run folder (no config.json)") from None
    except (ValueError, ConfigError, TypeError) as e:
        raise EvaluateError(f"{path} does not load: {str(e).splitlines()[0]}") from None


def _task(cfg, key: str) -> dict:
    if key == "ring/test":
        from .ring import ring_tasks

        t = ring_tasks(cfg)
        return {"layout": t["layout"], "start": t["start"], "goal": t["source"], "horizon": cfg.ring_horizon}
    from .experiments import grid_tasks

    t = grid_tasks(cfg)
    return {"layout": t["layout"], "start": t["start"], "goal": t["source"], "horizon": cfg.grid_max_steps}


def load_policy(run_dir: str | Path, arm: str = "distribution", key: str | None = None) -> dict:
    """``{"cfg", "arm", "family", "params" (stacked over the arm's seeds), "task", "key"}`` of a finished run."""
    from paperkit.checkpoint import CorruptCheckpoint, load_weights, verify

    from .arms import Arm
    from .policy import ObsSpec

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EvaluateError(f"no run folder at {run_dir}")
    cfg = _config(run_dir)
    try:
        progress = json.loads((run_dir / "checkpoints" / "progress.json").read_text())
    except FileNotFoundError:
        raise EvaluateError(f"{run_dir} holds no saved policies (no checkpoints/progress.json)") from None
    except ValueError as e:
        raise EvaluateError(f"{run_dir}/checkpoints/progress.json is corrupt: {e}") from None
    saved = progress.get("checkpoints", {})
    keys = [key] if key else [k for k in KEYS if k in saved]
    if not keys or keys[0] not in saved:
        raise EvaluateError(
            f"{run_dir} holds no saved policies of {key or ' or '.join(KEYS)} (is the run finished?)"
        )
    key = keys[0]
    folder = run_dir / "checkpoints" / saved[key]
    try:
        verify(folder, key)
        weights = load_weights(folder / "weights.safetensors")
        state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except CorruptCheckpoint as e:
        raise EvaluateError(str(e)) from None
    except Exception as e:  # torch's unpickler raises many types
        raise EvaluateError(f"corrupt checkpoint {folder}: {str(e).splitlines()[0]}") from None
    arms = state.get("arms", {})
    if arm not in arms or arm not in weights:
        raise EvaluateError(f"no arm {arm!r} in {key}; saved: {', '.join(sorted(arms))}")
    recipe = Arm(**arms[arm])
    task = _task(cfg, key)
    family = recipe.family(ObsSpec("index", task["layout"].n_cells), 4, cfg)
    params = weights[arm]
    expected = dict(family.named_parameters())
    if set(params) != set(expected) or any(params[k].shape[1:] != expected[k].shape for k in expected):
        raise EvaluateError(f"checkpoint {folder} does not match the {recipe.kind} family of {run_dir}")
    return {"cfg": cfg, "arm": recipe, "family": family, "params": params, "task": task, "key": key}


def rollouts(
    policy: dict, run: int = 0, latents: int = 4, *, sample: bool = False, seed: int = 0
) -> list[dict]:
    """One rollout per latent of run ``run`` on the source task: ``cells`` visited (greedy actions, or sampled
    with ``sample=True``) and the latent's exact success probability."""
    from .exact import exact_success, policy_tables

    params = {k: v[run : run + 1] for k, v in policy["params"].items()}
    n_runs = next(iter(policy["params"].values())).shape[0]
    if not 0 <= run < n_runs:
        raise EvaluateError(f"--run {run} is out of range: the arm has {n_runs} runs (0..{n_runs - 1})")
    gen = torch.Generator().manual_seed(int(seed))
    z = policy["arm"].latents(policy["family"], 1, latents, gen)[:, :latents]
    task = policy["task"]
    lay = task["layout"]
    table = torch.as_tensor(lay.transitions())
    probs = policy_tables(policy["family"], params, lay.n_cells, z)[0]  # [L, S, A]
    start, goal = lay.index(task["start"]), lay.index(task["goal"])
    success = exact_success(probs, table, start, [goal], task["horizon"])[:, 0]
    out = []
    for i in range(probs.shape[0]):
        cell, cells = start, [start]
        for _ in range(task["horizon"]):
            p = probs[i, cell]
            a = int(torch.multinomial(p, 1, generator=gen)) if sample else int(p.argmax())
            cell = int(table[cell, a])
            cells.append(cell)
            if cell == goal:
                break
        out.append({"cells": [lay.cell(c) for c in cells], "exact_success": float(success[i])})
    return out


def render_strip(policy: dict, rolls: list[dict], path: str | Path, title: str = "") -> Path:
    """A PNG with one row per rollout and one frame per step (walls, goal, the agent and its trail)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lay, task = policy["task"]["layout"], policy["task"]
    cols = max(len(r["cells"]) for r in rolls)
    fig, axes = plt.subplots(
        len(rolls), cols, figsize=(0.9 * cols, 0.9 * len(rolls) * lay.height / lay.width + 0.4), squeeze=False
    )
    walls = np.asarray(lay.walls, dtype=float)
    for i, r in enumerate(rolls):
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(r["cells"]):
                ax.axis("off")
                continue
            ax.imshow(walls, cmap="Greys", vmin=0, vmax=1.4)
            ax.plot(task["goal"][1], task["goal"][0], "s", color="tab:green", ms=7)
            trail = np.array(r["cells"][: j + 1])
            ax.plot(trail[:, 1], trail[:, 0], "-", color="tab:blue", lw=1, alpha=0.5)
            ax.plot(trail[-1, 1], trail[-1, 0], "o", color="tab:blue", ms=6)
            if j == 0:
                ax.set_ylabel(f"z{i}: {r['exact_success']:.2f}", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m policy_transfer.evaluate", description=__doc__.splitlines()[0]
    )
    p.add_argument("run_dir", help="a finished run folder (--out of the trainer)")
    p.add_argument("--arm", default="distribution", help="which saved arm (default: distribution)")
    p.add_argument(
        "--key", default=None, choices=KEYS, help="which experiment's policies (default: the first saved)"
    )
    p.add_argument("--run", type=int, default=0, help="which seed of the arm (default 0)")
    p.add_argument("--latents", type=int, default=4, help="latents to roll out (default 4)")
    p.add_argument("--sample", action="store_true", help="sample actions instead of the greedy ones")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws and sampled actions")
    p.add_argument("--render", default=None, metavar="PNG", help="write a frame strip of the rollouts here")
    a = p.parse_args(argv)
    try:
        if a.latents < 1:
            raise EvaluateError(f"--latents must be >= 1, got {a.latents}")
        policy = load_policy(a.run_dir, a.arm, a.key)
        rolls = rollouts(policy, a.run, a.latents, sample=a.sample, seed=a.seed)
        if a.render:
            title = f"{Path(a.run_dir).name}: {policy['key']} / {a.arm} / run {a.run} ({'sampled' if a.sample else 'greedy'})"
            try:
                render_strip(policy, rolls, a.render, title)
            except OSError as e:
                raise EvaluateError(f"--render {a.render}: {e.strerror or e}") from None
    except EvaluateError as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 2
    for i, r in enumerate(rolls):
        route = " ".join(f"{c[0]},{c[1]}" for c in r["cells"])
        print(f"z{i}: exact source success {r['exact_success']:.3f}; route {route}")
    if a.render:
        print(f"wrote {a.render}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
