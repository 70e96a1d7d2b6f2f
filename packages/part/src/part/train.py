"""The body of ``part``'s ``train`` command: the recipe described in :mod:`part.config` (``train --help``)."""

from __future__ import annotations

import time

import numpy as np
from paperkit import ConfigError, Run, run_trainer

from .config import ARMS, DESCRIPTION, PRESETS, Config

TASKS = {
    "images": (("box", "box mean IoU", "higher"), ("class", "scene accuracy", "higher")),
    "series": (
        ("onset", "onset MAE (samples)", "lower"),
        ("forecast", "forecast MSE", "lower"),
        ("class", "rhythm accuracy", "higher"),
    ),
    "folder": (("class", "linear-probe accuracy", "higher"),),
}
SPATIAL = {"box", "onset", "forecast"}


# -- data ------------------------------------------------------------------------------------------------------


def _layout(cfg: Config, modality: str):
    from .models import Layout

    if modality == "series":
        return Layout.series(cfg.series_length, cfg.window, 2)
    return Layout.image(cfg.image_size, cfg.patch, 3)


def make_data(cfg: Config, modality: str, seed: int) -> dict:
    """Pretraining pool and labelled train / val / test splits for one seed (deterministic in ``seed``)."""
    import torch.nn.functional as F

    from .data import DigitScenes, Signals, split_generator

    if modality == "folder":
        return _folder_data(cfg, seed)
    if modality == "images":
        src = DigitScenes(cfg.image_size, tuple(cfg.glyph_scale))
    else:
        src = Signals(cfg.series_length, cfg.horizon)
    sizes = {"train": cfg.probe_train, "val": cfg.probe_val, "test": cfg.probe_test}
    out = {"pool": src.sample(cfg.pool, "train", split_generator(seed, "train", 1))["x"]}
    for split, n in sizes.items():
        d = src.sample(n, split, split_generator(seed, split))
        if modality == "images":
            t = {"box": d["box"].double(), "class": F.one_hot(d["scene"], len(src.photos)).double()}
        else:
            t = {
                "onset": d["onset"].double()[:, None],
                "forecast": d["future"].flatten(1).double(),
                "class": F.one_hot(d["y"], src.classes).double(),
            }
        out[split] = {"x": d["x"], "targets": t}
    return out


def _folder_data(cfg: Config, seed: int) -> dict:
    """An image folder or file list, streamed from disk (paperkit.streaming): the pool and the probe splits are
    image lists, decoded on data-loader workers; only a small held-out sample for PART's gates is in memory."""
    import torch
    from paperkit.streaming import ImageList, eval_loader

    images = ImageList.open(cfg.data).check()
    train, held = images.split(cfg.folder_test_fraction, seed)
    val, test = held.split(0.5, seed + 1)
    if min(len(train), len(test)) < 2 or len(val) < 1:
        raise ConfigError(f"--data {cfg.data}: {len(images)} images are too few for train/val/test splits")
    gate = test.subset(np.arange(min(cfg.gate_images, len(test))))
    x = torch.cat([b for b, _, _ in eval_loader(gate, batch_size=256, size=cfg.image_size)]).float() / 255.0
    out = {"pool": train, "classes": len(images.classes), "test": {"x": x}}
    out["lists"] = {"train": train, "val": val, "test": test}
    return out


def _stream_features(cfg: Config, enc, images, pos: bool):
    """Features and labels of every readable image of a split, in order (the last partial batch kept)."""
    import torch
    from paperkit.streaming import eval_loader

    from .probe import features

    dev = next(enc.parameters()).device
    feats, labels = [], []
    for x, y, _ in eval_loader(images, batch_size=256, size=cfg.image_size, workers=cfg.workers):
        if len(x):
            feats.append(features(enc, (x.float() / 255.0).to(dev), pos=pos).cpu())
            labels.append(y)
    return torch.cat(feats), torch.cat(labels)


# -- one arm ---------------------------------------------------------------------------------------------------


def build(cfg: Config, modality: str, arm: str, seed: int):
    """The arm's objective (None for random init) and encoder, initialised from ``seed`` (the same encoder init
    for every arm of a seed)."""
    import torch

    from .models import Encoder, build_objective

    torch.manual_seed(seed)
    enc = Encoder(_layout(cfg, modality), cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio)
    torch.manual_seed(seed + 7_777)
    kw: dict = {}
    if arm == "part":
        kw = dict(
            head=cfg.part_head,
            pairs=cfg.part_pairs,
            scale=tuple(cfg.part_scale),
            aspect=cfg.part_aspect,
            log_scale=cfg.part_log_scale,
            head_heads=cfg.heads,
        )
    elif arm == "mae":
        kw = dict(mask_ratio=cfg.mae_mask, decoder_dim=cfg.mae_decoder_dim, heads=cfg.heads)
    elif arm == "droppos":
        kw = dict(mask_ratio=cfg.droppos_mask, pos_mask_ratio=cfg.droppos_pos_mask, sigma=cfg.droppos_sigma)
    return build_objective(arm, enc, **kw), enc


def pretrain(cfg: Config, run: Run, key: str, obj, pool, env, arm_id: int, seed: int) -> list[dict]:
    """Train ``obj`` for ``cfg.steps`` steps with checkpoints; returns the logged curve."""
    import torch
    from paperkit.device import step_generator
    from paperkit.distributed import all_reduce_mean, rank_slice, unwrap, wrap_ddp

    if cfg.batch % env.world_size:
        raise ConfigError(f"--batch {cfg.batch} is not divisible by {env.world_size} ranks")
    obj.to(env.device)
    model = wrap_ddp(obj, env)
    opt = torch.optim.AdamW(obj.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=max(cfg.warmup, 1e-3), anneal_strategy="cos"
    )
    loader = None
    if not isinstance(pool, torch.Tensor):  # an image list: stream it, one random-resized crop per image
        from paperkit.streaming import streaming_loader

        loader = streaming_loader(
            pool,
            batch_size=cfg.batch // env.world_size,
            size=cfg.image_size,
            views=1,
            seed=seed * 1_000 + arm_id,
            rank=env.rank,
            world_size=env.world_size,
            workers=cfg.workers,
            pin_memory=env.device.type == "cuda",
        )
    ckpt = run.checkpoint(key)
    start, curve, acc = 0, [], [0.0, 0]
    if ckpt.exists():
        start, weights, state = ckpt.load()
        obj.load_state_dict(weights["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        curve, acc = list(state["curve"]), [float(state["running"]), int(state["count"])]
        if loader is not None:
            loader.load_state_dict(state["loader"])  # the next batch is the one after the checkpoint's

    def save(done: int) -> None:
        state = {"opt": opt.state_dict(), "sched": sched.state_dict(), "curve": curve}
        if loader is not None:
            state["loader"] = loader.state_dict()
        ckpt.save(done, {"model": unwrap(model)}, {**state, "running": acc[0], "count": acc[1]})

    def next_batch(step: int, g):
        nonlocal batches
        if loader is None:
            idx = torch.randint(len(pool), (cfg.batch,), generator=g)
            return rank_slice(pool[idx], env)
        views = None
        while views is None or len(views) == 0:  # a batch of only unreadable images is skipped (counted)
            try:
                views, _ = next(batches)
            except StopIteration:  # an epoch ended: the loader moved on to the next one
                batches = iter(loader)
                views, _ = next(batches)
        return views[:, 0]  # [B, 1, 3, S, S] -> one view per image

    batches = iter(loader) if loader is not None else None

    log_every = max(1, cfg.steps // 30)
    from paperkit.device import autocast

    for step in run.steps(cfg.steps, start=start, desc=key, save=save):
        g = step_generator(seed, arm_id, step)
        x = next_batch(step, g).to(env.device, non_blocking=True)
        with autocast(env.device):
            loss, stats = model(x, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(all_reduce_mean(loss.detach().float()))
        run.check_finite(value, where=f"{key} step {step + 1}")
        acc[0], acc[1] = acc[0] + value, acc[1] + 1
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            row = {"arm": key, "step": step + 1, "loss": acc[0] / acc[1]}
            row.update({k: float(v) for k, v in stats.items()})
            row["lr"] = sched.get_last_lr()[0]
            curve.append(row)
            run.log(**row)
            acc[0], acc[1] = 0.0, 0
    save(cfg.steps)
    return curve


def part_gates(obj, x, seed: int) -> dict:
    """PART's pretext on held-out inputs (all N^2 pairs): MSE / floor, the same predictions against another
    input's targets (the control), and antisymmetry."""
    import torch

    from .relative import all_pairs, antisymmetry, floor_loss

    obj.eval()
    g = torch.Generator().manual_seed(10_000 + seed)
    with torch.no_grad():
        lay = obj.encoder.layout
        dev = next(obj.parameters()).device
        boxes = lay.sample_boxes(len(x), lay.n, scale=obj.scale, aspect=obj.aspect, generator=g).to(dev)
        pairs = all_pairs(lay.n, device=dev)
        pred = torch.cat(
            [obj.predict(x[i : i + 256].to(dev), boxes[i : i + 256], pairs) for i in range(0, len(x), 256)]
        )
        tgt = obj.targets(boxes, pairs)
        floor = floor_loss(tgt)
        ratio = float(((pred - tgt) ** 2).mean() / floor)
        shuffled = float(((pred - tgt.roll(1, 0)) ** 2).mean() / floor)
        anti = antisymmetry(pred, pairs, lay.n)
    obj.train()
    return {"floor_ratio": ratio, "shuffled_floor_ratio": shuffled, "antisymmetry": anti}


def evaluate(cfg: Config, enc, data: dict, modality: str) -> dict:
    import torch

    from .probe import features, probe

    enc.eval()
    dev = next(enc.parameters()).device
    feats, targets = {}, {}
    for pos in ("pos", "nopos"):
        if "lists" in data:  # streamed from a folder
            got = {s: _stream_features(cfg, enc, data["lists"][s], pos == "pos") for s in data["lists"]}
            feats[pos] = {s: f for s, (f, _) in got.items()}
            k = data["classes"]
            targets = {"class": {s: torch.nn.functional.one_hot(y, k).double() for s, (_, y) in got.items()}}
        else:
            feats[pos] = {
                s: features(enc, data[s]["x"].to(dev), pos=pos == "pos").cpu()
                for s in ("train", "val", "test")
            }
    out = {}
    for task, _, _ in TASKS[modality]:
        if "lists" not in data:
            targets[task] = {s: data[s]["targets"][task] for s in ("train", "val", "test")}
        out[task] = probe(task, feats, targets[task])
    return out


def run_arm(cfg: Config, run: Run, env, modality: str, arm: str, seed: int, data: dict) -> dict:
    key = f"{modality}/{arm}/s{seed}"
    obj, enc = build(cfg, modality, arm, seed)
    res: dict = {}
    t0 = time.perf_counter()
    if arm == "part":
        res["untrained_gates"] = part_gates(obj.to(env.device), data["test"]["x"], seed)
    if obj is not None:
        res["curve"] = pretrain(cfg, run, key, obj, data["pool"], env, ARMS.index(arm), seed)
    res["pretrain_seconds"] = round(time.perf_counter() - t0, 1)
    if arm == "part":
        res["gates"] = part_gates(obj, data["test"]["x"], seed)
    enc.to(env.device)
    res["probe"] = evaluate(cfg, enc, data, modality)
    return res


# -- claims and figure -------------------------------------------------------------------------------------------


def _vals(res: dict, modality: str, arm: str, task: str) -> list[float]:
    return [r["probe"][task]["test"] for r in res[modality][arm]]


def claims(cfg: Config, run: Run, res: dict) -> dict:
    table: dict = {}
    for modality in cfg.modalities:
        arms = res[modality]
        table[modality] = {
            arm: {
                task: {
                    "mean": sum(_vals(res, modality, arm, task)) / len(arms[arm]),
                    "values": _vals(res, modality, arm, task),
                }
                for task, _, _ in TASKS[modality]
            }
            for arm in arms
        }
        if "part" not in arms:
            continue
        m = modality
        part = arms["part"]
        run.claim_over_seeds(
            f"{m}_gate_pretext",
            f"{m}: PART's pretext MSE on held-out inputs is at most {cfg.gate_floor} x the mean-predictor floor "
            "(all N^2 pairs)",
            values=[r["gates"]["floor_ratio"] for r in part],
            op="<=",
            threshold=cfg.gate_floor,
            control=[r["gates"]["shuffled_floor_ratio"] for r in part],
            control_name="same predictions vs another input's targets",
        )
        run.claim_over_seeds(
            f"{m}_gate_antisym",
            f"{m}: PART's predictions are antisymmetric, mean|t_ij + t_ji| / (mean|t_ij| + mean|t_ji|) <= {cfg.gate_antisym}",
            values=[r["gates"]["antisymmetry"] for r in part],
            op="<=",
            threshold=cfg.gate_antisym,
            control=[r["untrained_gates"]["antisymmetry"] for r in part],
            control_name="untrained PART",
        )
        for task, label, better in TASKS[m]:
            op = ">" if better == "higher" else "<"
            for other in ("random", "mae", "droppos"):
                if other not in arms:
                    continue
                kind = "spatial" if task in SPATIAL else "global control task; the paper expects no advantage"
                run.claim_difference(
                    f"{m}_{task}_part_vs_{other}",
                    f"{m}: PART beats {other} on {label} ({kind}); frozen features, test split",
                    method=_vals(res, m, "part", task),
                    control=_vals(res, m, other, task),
                    control_name=other if other != "random" else "random init",
                    op=op,
                    threshold=0.0,
                )
    return table


def plot(cfg: Config, run: Run, res: dict) -> None:
    from paperkit.plotting import figure

    panels = [(m, t) for m in cfg.modalities for t in TASKS[m]]
    fig, axes = figure(len(panels) + 1, 1, width=3.0, height=3.0)
    colours = {"part": "tab:red", "mae": "tab:blue", "droppos": "tab:green", "random": "tab:gray"}
    for ax, (m, (task, label, _)) in zip(axes[0], panels):
        arms = list(res[m])
        for i, arm in enumerate(arms):
            v = _vals(res, m, arm, task)
            ax.scatter([i] * len(v), v, color=colours[arm], s=12)
            ax.hlines(sum(v) / len(v), i - 0.3, i + 0.3, color=colours[arm])
        ax.set_xticks(range(len(arms)), arms, fontsize=8)
        ax.set_title(f"{m}: {label}", fontsize=9)
    ax = axes[0][-1]
    for m in cfg.modalities:
        for r in res[m].get("part", [])[:1]:
            c = r.get("curve", [])
            ax.plot([p["step"] for p in c], [p.get("floor_ratio", float("nan")) for p in c], label=m)
    ax.axhline(cfg.gate_floor, color="k", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_title("PART loss / floor (seed 0)", fontsize=9)
    ax.legend(fontsize=7)
    run.save_figure(fig, "part")


def body(cfg: Config, run: Run) -> dict:
    from paperkit import distributed
    from paperkit.device import seed_everything

    env = distributed.init(cfg.device)
    seed_everything(cfg.seed)
    res: dict = {}
    try:
        for modality in cfg.modalities:
            res[modality] = {arm: [] for arm in cfg.arms}
            for s in range(cfg.seeds):
                seed = cfg.seed + s
                data = None
                for arm in cfg.arms:
                    key = f"{modality}/{arm}/s{seed}"
                    if data is None and key not in run._progress["phases"]:
                        data = make_data(cfg, modality, seed)

                    def fn(arm=arm, seed=seed, data=data, modality=modality):
                        return run_arm(cfg, run, env, modality, arm, seed, data)

                    res[modality][arm].append(run.phase(key, fn))
    finally:
        distributed.shutdown()
    table = claims(cfg, run, res)
    if run.is_main:
        plot(cfg, run, res)
    gates = {
        m: {
            k: [r["gates"][k] for r in res[m]["part"]]
            for k in ("floor_ratio", "shuffled_floor_ratio", "antisymmetry")
        }
        for m in cfg.modalities
        if "part" in res[m]
    }
    secs = {m: {a: [r["pretrain_seconds"] for r in res[m][a]] for a in res[m]} for m in cfg.modalities}
    return {
        "world_size": env.world_size,
        "device": str(env.device),
        "metrics": table,
        "part_gates": gates,
        "pretrain_seconds": secs,
    }


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="part", config_cls=Config, presets=PRESETS, body=body, argv=argv, description=DESCRIPTION
    )
