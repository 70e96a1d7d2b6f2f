"""The body of ``affective-music``'s ``train`` command: the recipe described in :mod:`affective_music.config` (``train --help``)."""

from __future__ import annotations

import copy
import math

from paperkit import ConfigError, Run, run_trainer

from .config import DESCRIPTION, PRESETS, Config

MODEL_OF_ARM = {"acp": "acp", "acp-cos": "acp-cos", "l3": "l3", "spectrogram": "acp", "shuffled": "acp"}
COMMON_SPACE = ("acp", "acp-cos", "spectrogram", "shuffled")  # arms whose embeddings share one space
PAPER = {"acp": 0.6167, "l3": 0.5717, "spectrogram": 0.5584}


# -- data ------------------------------------------------------------------------------------------------------


def make_data(cfg: Config) -> dict:
    """Clips and images (synthetic or IMAC), their front-end features, labels and disjoint splits."""
    import numpy as np
    import torch

    from .frontend import LogMel, log_mel_batched, spectrogram_image
    from .pairs import stratified_split
    from .synth import SynthSpec, observed_labels, synth_images, synth_music

    if cfg.data:
        from .imac import load_imac

        raw = load_imac(cfg.data, sample_rate=cfg.sample_rate, seconds=cfg.seconds, image_size=cfg.image_size)
        waves, images = raw["waves"], raw["images"]
        clip_labels, image_labels = raw["clip_labels"], raw["image_labels"]
    else:
        spec = SynthSpec(
            sample_rate=cfg.sample_rate,
            seconds=cfg.seconds,
            image_size=cfg.image_size,
            cue_noise=cfg.cue_noise,
            label_flip=cfg.label_flip,
        )
        rng = np.random.default_rng(cfg.seed)
        true_c, true_i = rng.integers(0, 3, cfg.clips), rng.integers(0, 3, cfg.images)
        waves = synth_music(true_c, cfg.seed + 1, spec)["waves"]
        images = synth_images(true_i, cfg.seed + 2, spec)["images"]
        clip_labels = observed_labels(true_c, rng, cfg.label_flip)
        image_labels = observed_labels(true_i, rng, cfg.label_flip)
    for name, lab in (("clip", clip_labels), ("image", image_labels)):
        if len(np.unique(lab)) < 3 or min(np.bincount(lab, minlength=3)) < 3:
            raise ConfigError(f"every emotion needs at least 3 {name}s (train, val and test each need one)")
    w = torch.from_numpy(waves)
    front = LogMel(cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels)
    log_mel = log_mel_batched(w, front)[:, None]
    spec_img = spectrogram_image(w, cfg.n_fft, cfg.hop_length, cfg.image_size)
    clip_split = stratified_split(clip_labels, tuple(cfg.split), cfg.seed + 11)
    image_split = stratified_split(image_labels, tuple(cfg.split), cfg.seed + 12)
    img = torch.from_numpy(images).float() / 255.0
    tr_c, tr_i = torch.from_numpy(clip_split["train"]), torch.from_numpy(image_split["train"])

    def stats(x):
        return float(x.mean()), float(x.std().clamp(min=1e-6))

    return {
        "waves": waves,
        "log_mel": log_mel,
        "spec_img": spec_img,
        "images": img,
        "clip_labels": torch.from_numpy(np.asarray(clip_labels)).long(),
        "image_labels": torch.from_numpy(np.asarray(image_labels)).long(),
        "clip_split": {k: torch.from_numpy(v) for k, v in clip_split.items()},
        "image_split": {k: torch.from_numpy(v) for k, v in image_split.items()},
        "norm": {
            "log_mel": stats(log_mel[tr_c]),
            "spec_img": stats(spec_img[tr_c]),
            "images": stats(img[tr_i]),
        },
    }


def check_disjoint(data: dict) -> None:
    for kind in ("clip_split", "image_split"):
        s = data[kind]
        sets = [set(s[k].tolist()) for k in ("train", "val", "test")]
        if sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2]:
            raise AssertionError(f"{kind}: train, val and test overlap")


def raw_floors(cfg: Config, data: dict) -> dict:
    """A linear classifier on raw features (log-mel statistics, HSV histograms): the floor for the probes."""
    from .synth import hsv_histogram, mel_statistics

    feats = {
        "music_mel_statistics": (
            mel_statistics(data["log_mel"][:, 0].numpy()),
            data["clip_labels"],
            "clip_split",
        ),
        "image_hsv_histogram": (
            hsv_histogram((data["images"].numpy() * 255).round()),
            data["image_labels"],
            "image_split",
        ),
    }
    return {name: probe(cfg, x, y, data[split]) for name, (x, y, split) in feats.items()}


def probe(cfg: Config, x, y, split: dict) -> float:
    """Linear probe: fit on train, choose C on validation, report test accuracy."""
    from paperkit.evaluation import linear_probe

    tr, va, te = split["train"], split["val"], split["test"]
    best = max(cfg.probe_cs, key=lambda c: linear_probe(x[tr], y[tr], x[va], y[va], c=c))
    return linear_probe(x[tr], y[tr], x[te], y[te], c=best)


# -- one arm ---------------------------------------------------------------------------------------------------


def _inputs(arm: str, data: dict):
    key = "spec_img" if arm == "spectrogram" else "log_mel"
    return data[key], data["norm"][key]


def build_model(cfg: Config, arm: str, data: dict):
    from .models import build

    audio, audio_norm = _inputs(arm, data)
    return build(
        MODEL_OF_ARM[arm],
        audio_in=audio.shape[1],
        audio_model=cfg.audio_model,
        image_model=cfg.image_model,
        channels=tuple(cfg.channels),
        dim=cfg.dim,
        hidden=cfg.hidden,
        audio_norm=audio_norm,
        image_norm=data["norm"]["images"],
    )


def training_labels(arm: str, data: dict, seed: int):
    """The labels an arm's pairs are built from: the observed ones, or (``shuffled``) a permutation of them within
    each split, so that the pairs' targets carry no emotion information."""
    import torch

    c, i = data["clip_labels"].clone(), data["image_labels"].clone()
    if arm == "shuffled":
        g = torch.Generator().manual_seed(seed + 424242)
        for lab, split in ((c, data["clip_split"]), (i, data["image_split"])):
            for idx in split.values():
                lab[idx] = lab[idx[torch.randperm(len(idx), generator=g)]]
    return c, i


def embeddings(model, arm: str, data: dict, device, clips=None, images=None) -> dict:
    """Frozen embeddings (eval mode) ``{"audio": [N, d], "image": [M, d]}`` indexed like the full data; with
    ``clips`` / ``images`` only those rows are computed (the others stay zero): validation checks embed only the
    validation items."""
    import torch

    audio, _ = _inputs(arm, data)
    model.eval()
    out = {}
    for name, x, idx, fn in (
        ("audio", audio, clips, model.embed_audio),
        ("image", data["images"], images, model.embed_image),
    ):
        idx = torch.arange(len(x)) if idx is None else idx
        with torch.no_grad():
            e = torch.cat([fn(x[idx[j : j + 512]].to(device)).float().cpu() for j in range(0, len(idx), 512)])
        full = torch.zeros(len(x), e.shape[1])
        full[idx] = e
        out[name] = full
    return out


def pair_accuracy(model, emb: dict, pairs) -> float:
    import torch

    a_idx, v_idx, y = pairs
    with torch.no_grad():
        logits = model.fuse(emb["audio"][a_idx].to(_dev(model)), emb["image"][v_idx].to(_dev(model)))
    return float((logits.argmax(-1).cpu() == y).float().mean())


def _dev(model):
    return next(model.parameters()).device


def train_arm(cfg: Config, run: Run, data: dict, arm: str, s: int, device) -> dict:
    """Train one arm for one seed (resuming from its checkpoint), keep the best-validation weights, evaluate."""
    import torch
    import torch.nn.functional as F
    from paperkit.device import autocast, step_generator

    from .pairs import fixed_pairs, sample_pairs

    key = f"{arm}/seed{s}"
    seed = cfg.seed + 1000 * (s + 1)
    torch.manual_seed(seed)
    model = build_model(cfg, arm, data).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clip_lab, image_lab = training_labels(arm, data, seed)
    cs, isp = data["clip_split"], data["image_split"]
    val = fixed_pairs(clip_lab, image_lab, cs["val"], isp["val"], cfg.val_pairs, cfg.seed + 21)
    audio, _ = _inputs(arm, data)
    ckpt = run.checkpoint(key)
    start, best = 0, {"val_acc": -1.0, "step": 0}
    best_state = copy.deepcopy(model.state_dict())
    if ckpt.exists():
        start, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        best_state = weights["best"]
        opt.load_state_dict(state["optimizer"])
        best = {"val_acc": float(state["best_val_acc"]), "step": int(state["best_step"])}

    def save(step: int) -> None:
        ckpt.save(
            step,
            {"model": model, "best": best_state},
            {"optimizer": opt.state_dict(), "best_val_acc": best["val_acc"], "best_step": best["step"]},
        )

    for step in run.steps(cfg.steps, start=start, desc=key, save=save):
        a, v, y = sample_pairs(
            clip_lab, image_lab, cs["train"], isp["train"], cfg.batch, step_generator(seed, step)
        )
        model.train()
        with autocast(device):
            logits = model(audio[a].to(device), data["images"][v].to(device))
        loss = F.cross_entropy(logits.float(), y.to(device))
        run.check_finite(float(loss.detach()), where=f"{key} step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            acc = pair_accuracy(model, embeddings(model, arm, data, device, cs["val"], isp["val"]), val)
            if acc > best["val_acc"]:
                best = {"val_acc": acc, "step": done}
                best_state = copy.deepcopy(model.state_dict())
            run.log(arm=arm, seed=s, step=done, loss=float(loss.detach()), val_acc=acc)
    if start < cfg.steps:
        save(cfg.steps)  # the final and the best-validation weights stay in checkpoints/ARM--seedS/
    model.load_state_dict(best_state)
    return evaluate_arm(cfg, model, arm, data, device, best)


def retrieval_k(cfg: Config, data: dict) -> int:
    """The retrieval depth: ``--k``, capped at the number of test clips and of test images."""
    return min(cfg.k, len(data["clip_split"]["test"]), len(data["image_split"]["test"]))


def evaluate_arm(cfg: Config, model, arm: str, data: dict, device, best: dict) -> dict:
    from . import retrieval
    from .pairs import fixed_pairs

    cs, isp = data["clip_split"], data["image_split"]
    test = fixed_pairs(
        data["clip_labels"], data["image_labels"], cs["test"], isp["test"], cfg.test_pairs, cfg.seed + 22
    )
    emb = embeddings(model, arm, data, device)
    out = {
        "test_acc": pair_accuracy(model, emb, test),
        "val_acc": best["val_acc"],
        "best_step": best["step"],
        "probe_audio": probe(cfg, emb["audio"], data["clip_labels"], cs),
        "probe_image": probe(cfg, emb["image"], data["image_labels"], isp),
    }
    if arm in COMMON_SPACE:
        kw = dict(
            k=retrieval_k(cfg, data),
            hnsw_m=cfg.hnsw_m,
            ef_search=cfg.ef_search,
            nlist=cfg.ivf_nlist or None,
            nprobe=cfg.ivf_nprobe,
            threads=cfg.faiss_threads,
            seed=cfg.seed,
        )
        qa, qi = emb["audio"][cs["test"]], emb["image"][isp["test"]]
        la, li = data["clip_labels"][cs["test"]].numpy(), data["image_labels"][isp["test"]].numpy()
        out["music_to_image"] = retrieval.evaluate(qa, la, qi, li, **kw)
        out["image_to_music"] = retrieval.evaluate(qi, li, qa, la, kinds=("exact",), **kw)
    return out


# -- claims and figures ----------------------------------------------------------------------------------------


def per_seed(res: dict, arm: str, *path: str) -> list[float]:
    vals = []
    for s in sorted(k for k in res if k.startswith(f"{arm}/seed")):
        v = res[s]
        for p in path:
            v = v[p]
        vals.append(float(v))
    return vals


def make_claims(cfg: Config, run: Run, res: dict, k: int) -> None:
    arms = set(cfg.arms)
    if {"acp", "shuffled"} <= arms:
        run.claim_over_seeds(
            "correspondence_above_chance",
            "ACP-Net's correspondence accuracy on test pairs of unseen clips and images is above chance (0.5)",
            values=per_seed(res, "acp", "test_acc"),
            op=">",
            threshold=0.5,
            control=per_seed(res, "shuffled", "test_acc"),
            control_name="ACP-Net trained on shuffled emotions",
        )
    for base, name, paper in (
        ("l3", "L3-Net-style concatenation", "61.67 vs 57.17"),
        ("spectrogram", "Spectrogram-ACP", "61.67 vs 55.84"),
    ):
        if {"acp", base} <= arms:
            run.claim_difference(
                f"acp_beats_{base}",
                f"ACP-Net's test correspondence accuracy exceeds the {name} baseline's (paper: {paper}%)",
                method=per_seed(res, "acp", "test_acc"),
                control=per_seed(res, base, "test_acc"),
                control_name=name,
                op=">",
                threshold=0.0,
            )
    if {"acp", "shuffled"} <= arms:
        level = 1 / 3 + cfg.probe_margin
        for branch, what in (("audio", "music"), ("image", "image")):
            run.claim_over_seeds(
                f"{what}_emotion_probe",
                f"a linear probe on ACP-Net's frozen {what} embeddings recognises emotion above chance by "
                f"{cfg.probe_margin:g} (> {level:.3f}); no emotion label was used in training",
                values=per_seed(res, "acp", f"probe_{branch}"),
                op=">",
                threshold=level,
                control=per_seed(res, "shuffled", f"probe_{branch}"),
                control_name="the shuffled-emotion ACP-Net's embeddings",
            )
            run.claim_difference(
                f"{what}_probe_gain",
                f"correspondence training puts emotion into the {what} embeddings: ACP-Net's probe accuracy "
                "exceeds the shuffled-emotion ACP-Net's (same architecture, same probe)",
                method=per_seed(res, "acp", f"probe_{branch}"),
                control=per_seed(res, "shuffled", f"probe_{branch}"),
                control_name="shuffled-emotion ACP-Net",
                op=">",
                threshold=0.0,
            )
    main = "acp-cos" if "acp-cos" in arms else "acp"
    if main in arms and "shuffled" in arms:
        run.claim_over_seeds(
            "retrieval_precision",
            f"music-to-image retrieval with {main}'s embeddings (faiss exact search): precision@{k} of same-emotion "
            "images above 1/3",
            values=per_seed(res, main, "music_to_image", "exact", f"precision@{k}"),
            op=">",
            threshold=1 / 3,
            control=per_seed(res, "shuffled", "music_to_image", "exact", f"precision@{k}"),
            control_name="shuffled-emotion ACP-Net",
        )


def exactness_check(cfg: Config, run: Run) -> dict:
    """faiss exact inner-product search returns torch's top-k (ids) on a fixed random set: deterministic."""
    import numpy as np

    from . import retrieval

    rng = np.random.default_rng(cfg.seed)
    db, q = (
        retrieval.normalize(rng.standard_normal((2000, 32))),
        retrieval.normalize(rng.standard_normal((200, 32))),
    )
    _, ids = retrieval.search(retrieval.build_index("exact", db, threads=cfg.faiss_threads), q, cfg.k)
    _, ref = retrieval.torch_topk(q, db, cfg.k)
    agree = float((ids == ref).mean())
    run.claim(
        "faiss_exact_equals_torch",
        f"faiss IndexFlatIP top-{cfg.k} ids equal torch matmul + topk "
        "(share of identical ids, 2,000 x 200 random unit vectors)",
        agree,
        "==",
        1.0,
    )
    return {"faiss_exact_vs_torch_agreement": agree}


def figures(cfg: Config, run: Run, data: dict, device) -> None:
    """Embedding map (PCA of one seed's test embeddings, coloured by emotion) and retrieval examples."""
    import numpy as np
    from paperkit.plotting import figure

    from . import retrieval
    from .synth import EMOTIONS

    arm = "acp-cos" if "acp-cos" in cfg.arms else cfg.arms[0]
    ckpt = run.checkpoint(f"{arm}/seed0")
    if not ckpt.exists():
        return
    model = build_model(cfg, arm, data).to(device)
    _, weights, _ = ckpt.load(restore_rng=False)
    model.load_state_dict(weights["best"])
    emb = embeddings(model, arm, data, device)
    cs, isp = data["clip_split"]["test"], data["image_split"]["test"]
    a, v = emb["audio"][cs].numpy(), emb["image"][isp].numpy()
    la, li = data["clip_labels"][cs].numpy(), data["image_labels"][isp].numpy()
    if a.shape[1] == v.shape[1]:
        both = np.concatenate([a, v])
        mean = both.mean(0)
        _, _, vt = np.linalg.svd(both - mean, full_matrices=False)
        pa, pv = (a - mean) @ vt[:2].T, (v - mean) @ vt[:2].T
        fig, axes = figure(1, 1, width=5.5, height=4.5)
        ax = axes[0][0]
        colors = ("tab:orange", "tab:gray", "tab:blue")
        for c, name in enumerate(EMOTIONS):
            ax.scatter(*pv[li == c].T, s=6, alpha=0.35, color=colors[c], marker="o", label=f"image {name}")
            ax.scatter(
                *pa[la == c].T,
                s=18,
                alpha=0.9,
                color=colors[c],
                marker="^",
                edgecolor="k",
                linewidth=0.3,
                label=f"music {name}",
            )
        ax.set_title(f"{arm} seed 0: test embeddings (PCA of the common space)")
        ax.legend(fontsize=6, ncol=2)
        run.save_figure(fig, "embedding_map")
        ids = retrieval.search(
            retrieval.build_index("exact", retrieval.normalize(v)), retrieval.normalize(a), 8
        )[1]
        fig, axes = figure(8, 3, width=1.1, height=1.2)
        for row, c in enumerate(range(3)):
            q = int(np.flatnonzero(la == c)[0])
            for col in range(8):
                ax = axes[row][col]
                img = data["images"][isp[ids[q, col]]].permute(1, 2, 0).numpy()
                ax.imshow(img, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                ax.set_title(
                    EMOTIONS[li[ids[q, col]]][:3],
                    fontsize=7,
                    color="green" if li[ids[q, col]] == c else "red",
                )
            axes[row][0].set_ylabel(f"{EMOTIONS[c]}\nclip", fontsize=7)
        fig.suptitle(
            f"music query -> top-8 test images ({arm}, seed 0; title: image label, green = same emotion)",
            fontsize=8,
        )
        run.save_figure(fig, "retrieval_examples")


def plot_accuracy(cfg: Config, run: Run, res: dict) -> None:
    from paperkit.plotting import figure

    fig, axes = figure(1, 1, width=5.5)
    ax = axes[0][0]
    for i, arm in enumerate(cfg.arms):
        vals = per_seed(res, arm, "test_acc")
        ax.scatter([i] * len(vals), vals, color="k", s=10, zorder=3)
        ax.bar(
            i, sum(vals) / len(vals), color="tab:green" if arm.startswith("acp") else "tab:gray", alpha=0.7
        )
        if arm in PAPER:
            ax.plot([i - 0.4, i + 0.4], [PAPER[arm]] * 2, color="tab:red", linewidth=2)
    ax.axhline(0.5, color="k", linestyle=":", linewidth=1)
    ax.set_xticks(range(len(cfg.arms)), cfg.arms, rotation=20)
    ax.set_ylim(0.4, max(0.75, max(max(per_seed(res, a, "test_acc")) for a in cfg.arms) + 0.03))
    ax.set_ylabel("test correspondence accuracy")
    ax.set_title("bars: mean over seeds, dots: seeds, red: the paper (IMAC)")
    run.save_figure(fig, "accuracy")


def body(cfg: Config, run: Run) -> dict:
    from paperkit.device import resolve_device, seed_everything

    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = make_data(cfg)
    check_disjoint(data)
    results: dict = {
        "device": str(device),
        "data": cfg.data or "synthetic",
        "sizes": {kind: {k: len(v) for k, v in data[kind].items()} for kind in ("clip_split", "image_split")},
        "raw_feature_floor": run.phase("floors", lambda: raw_floors(cfg, data)),
    }
    arms: dict = {}
    for arm in cfg.arms:
        for s in range(cfg.seeds):
            key = f"{arm}/seed{s}"
            arms[key] = run.phase(key, lambda arm=arm, s=s: train_arm(cfg, run, data, arm, s, device))
    results["arms"] = arms
    summary = {}
    k = retrieval_k(cfg, data)
    for arm in cfg.arms:
        row = {
            m: _mean(per_seed(arms, arm, m)) for m in ("test_acc", "val_acc", "probe_audio", "probe_image")
        }
        if arm in COMMON_SPACE:
            for kind in ("exact", "hnsw", "ivf"):
                for metric in (f"precision@{k}", f"map@{k}", f"recall@{k}"):
                    row[f"m2i_{kind}_{metric}"] = _mean(per_seed(arms, arm, "music_to_image", kind, metric))
            row["m2i_exact_map"] = _mean(per_seed(arms, arm, "music_to_image", "exact", "map"))
            row[f"i2m_exact_precision@{k}"] = _mean(
                per_seed(arms, arm, "image_to_music", "exact", f"precision@{k}")
            )
        summary[arm] = row
    results["mean_over_seeds"] = summary
    results["paper"] = {
        "acp": 0.6167,
        "l3": 0.5717,
        "spectrogram": 0.5584,
        "data": "IMAC (85k images, 3.8k songs)",
    }
    make_claims(cfg, run, arms, k)
    results.update(exactness_check(cfg, run))
    plot_accuracy(cfg, run, arms)
    figures(cfg, run, data, device)
    return results


def _mean(v: list[float]) -> float:
    return float(sum(v) / len(v)) if v else math.nan


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="affective-music",
        config_cls=Config,
        presets=PRESETS,
        body=body,
        argv=argv,
        description=DESCRIPTION,
    )
