"""The body of ``cdslm``'s ``train`` command: the recipe described in :mod:`cdslm.config` (``train --help``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from paperkit import ConfigError, Run, run_trainer

from .config import DESCRIPTION, PRESETS, Config

# -- pieces ----------------------------------------------------------------------------------------------------


def windows(split, ctx: int, cont: int, offset: int = 10):
    """Non-overlapping (context, continuation) windows of every utterance: tensors and the utterance id of each."""
    import torch

    total = ctx + cont
    xs, ys, owner = [], [], []
    for u, (f, y) in enumerate(zip(split.frames, split.labels)):
        s = offset
        while s + total <= len(f):
            xs.append(f[s : s + total])
            ys.append(y[s : s + total])
            owner.append(u)
            s += total
    if not xs:
        raise ConfigError("no utterance is long enough for one context + continuation window")
    x, y = torch.stack(xs), torch.stack(ys)
    return x[:, :ctx], x[:, ctx:], y, torch.tensor(owner)


def eval_set(split, cfg: Config, seed: int):
    """Fixed windows, stratified times and noise for a deterministic loss estimate."""
    import torch

    from .data import crops
    from .model import patchify

    g = torch.Generator().manual_seed(seed)
    ctx, cont = crops(split, cfg.eval_windows, cfg.ctx_frames, cfg.cont_frames, g)
    ctx, cont = patchify(ctx, cfg.patch), patchify(cont, cfg.patch)
    k = cfg.eval_t
    t = ((torch.arange(k) + 0.5) / k).repeat(cfg.eval_windows)
    ctx, cont = ctx.repeat_interleave(k, 0), cont.repeat_interleave(k, 0)
    eps = torch.randn(cont.shape, generator=g)
    return ctx, cont, t, eps


def eval_loss(model, es, device, chunk: int = 1024) -> float:
    import torch

    from .diffusion import diffusion_loss

    ctx, cont, t, eps = es
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(t), chunk):
            sl = slice(i, i + chunk)
            per = diffusion_loss(
                model,
                ctx[sl].to(device),
                cont[sl].to(device),
                t[sl].to(device),
                eps[sl].to(device),
                gamma=_GAMMA[0],
                reduce=False,
            )
            total += float(per.double().sum())
    return total / len(t)


_GAMMA = [5.0]


def build_model(cfg: Config, width: int, token_dim: int):
    from .model import MMDiT

    return MMDiT(
        token_dim=token_dim,
        dim=width,
        depth=cfg.depth,
        heads=max(1, width // cfg.head_dim),
        max_ctx=cfg.ctx_frames // cfg.patch,
        max_cont=cfg.cont_frames // cfg.patch,
    )


def generate(model, ctx_frames, cfg: Config, guidance: float, seed: int, device, chunk: int = 512):
    """DDIM continuations (frames) for context frames (B, Tc, M)."""
    import torch

    from .diffusion import ddim_sample
    from .model import patchify, unpatchify

    g = torch.Generator().manual_seed(seed)
    ctx = patchify(ctx_frames, cfg.patch)
    shape = (ctx.shape[0], cfg.cont_frames // cfg.patch, ctx.shape[2])
    noise = torch.randn(shape, generator=g)
    out = []
    for i in range(0, len(ctx), chunk):
        x = ddim_sample(
            model,
            ctx[i : i + chunk].to(device),
            noise[i : i + chunk].shape,
            steps=cfg.sample_steps,
            guidance=guidance,
            noise=noise[i : i + chunk].to(device),
        )
        out.append(x.float().cpu())
    return unpatchify(torch.cat(out), cfg.patch)


def decode_cont(rec, ctx, cont) -> list[list[int]]:
    """Recognise the continuation frames with the context in view (the recogniser's receptive field)."""
    import torch

    from .pjsd import collapse

    with torch.no_grad():
        ids = rec(torch.cat([ctx, cont], 1)).argmax(-1)[:, ctx.shape[1] :]
    return [collapse(r.tolist(), rec.min_run) for r in ids]


def halves(owner, seed: int):
    """Disjoint halves A, B of the windows, split by utterance with a seeded permutation."""
    import torch

    utts = torch.unique(owner)
    perm = utts[torch.randperm(len(utts), generator=torch.Generator().manual_seed(seed))]
    a_utts = set(perm[: len(perm) // 2].tolist())
    a = torch.tensor([o in a_utts for o in owner.tolist()])
    return a.nonzero().squeeze(1), (~a).nonzero().squeeze(1)


# -- one model of the grid ---------------------------------------------------------------------------------------


def arm_steps(cfg: Config, width: int) -> int:
    """Only the largest width trains to the largest step count (the held-out point); the others stop at the
    second largest, the largest D the fit sees."""
    steps = sorted(set(cfg.steps))
    return steps[-1] if width == max(cfg.widths) else steps[-2]


def train_arm(cfg: Config, run: Run, key: str, env, data: dict, width: int, seed: int) -> dict:
    import torch
    from paperkit import distributed
    from paperkit.device import autocast, step_generator
    from paperkit.ema import ScaledEMA, Warmup

    from .data import crops
    from .diffusion import diffusion_loss, sample_t
    from .model import patchify

    corpus = data["corpus"]
    token_dim = cfg.patch * cfg.n_mels
    torch.manual_seed(seed * 7919 + width)
    model = build_model(cfg, width, token_dim).to(env.device)
    n_params = model.num_params()
    net = distributed.wrap_ddp(model, env)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    ema = ScaledEMA(model, Warmup(cfg.ema, base_batch_size=cfg.batch), base_batch_size=cfg.batch)
    evals: list[dict] = []
    ckpt = run.checkpoint(key)
    start = 0
    if ckpt.exists():
        start, w, state = ckpt.load()
        model.load_state_dict(w["model"])
        ema.load_state_dict(w["ema"])
        opt.load_state_dict(state["opt"])
        evals = json.loads(state["evals"])

    def save(done: int) -> None:
        ckpt.save(done, {"model": model, "ema": ema}, {"opt": opt.state_dict(), "evals": json.dumps(evals)})

    total = arm_steps(cfg, width)
    marks = {s for s in cfg.steps if s <= total}
    tokens_per_step = cfg.batch * cfg.cont_frames // cfg.patch
    train = corpus.split("train")
    for step in run.steps(total, start=start, desc=key, save=save):
        g = step_generator(seed, width, step)
        ctx, cont = crops(train, cfg.batch, cfg.ctx_frames, cfg.cont_frames, g)
        ctx, cont = patchify(ctx, cfg.patch), patchify(cont, cfg.patch)
        t = sample_t(cfg.batch, g, schedule=cfg.time_schedule)
        eps = torch.randn(cont.shape, generator=g)
        drop = torch.rand(cfg.batch, generator=g) < cfg.cfg_drop
        ctx, cont, t, eps, drop = (
            distributed.rank_slice(v, env).to(env.device) for v in (ctx, cont, t, eps, drop)
        )
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else cfg.lr
        for group in opt.param_groups:
            group["lr"] = lr
        with autocast(env.device):
            loss = diffusion_loss(net, ctx, cont, t, eps, gamma=cfg.gamma, drop=drop)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model, batch_size=cfg.batch)
        done = step + 1
        if done % 25 == 0 or done == 1:
            run.check_finite(float(loss.detach()), where=f"{key} step {done}")
            run.log(arm=key, step=done, loss=float(loss.detach()), lr=lr)
        if done in marks:
            rec = {
                "steps": done,
                "D": done * tokens_per_step,
                "val_loss": eval_loss(ema.module, data["eval"]["val"], env.device),
                "test_loss": eval_loss(ema.module, data["eval"]["test"], env.device),
            }
            evals.append(rec)
            run.log(arm=key, **rec)
    # continuations: guidance chosen on validation pJSD, then test pJSD
    m = ema.module
    val = data["val_windows"]
    a, b = halves(val["owner"], seed)
    per_w = {}
    for w in cfg.guidance_grid:
        gen = generate(m, val["ctx"][a], cfg, w, seed, env.device)
        per_w[str(w)] = _pjsd(cfg, data["rec"], val["ctx"][a], gen, val["real_seqs"], b)
    best_w = float(min(per_w, key=per_w.get))
    test = data["test_windows"]
    a, b = halves(test["owner"], seed)
    gen = generate(m, test["ctx"][a], cfg, best_w, seed + 1, env.device)
    out = {
        "width": width,
        "N": n_params,
        "evals": evals,
        "val_pjsd_by_guidance": per_w,
        "guidance": best_w,
        "test_pjsd": _pjsd(cfg, data["rec"], test["ctx"][a], gen, test["real_seqs"], b),
    }
    if width == max(cfg.widths):
        out["example"] = gen[: max(1, cfg.n_wavs)].tolist()
        out["example_index"] = a[: max(1, cfg.n_wavs)].tolist()
    return out


def _pjsd(cfg: Config, rec, ctx, gen, real_seqs, b_idx) -> float:
    from .pjsd import pjsd

    seqs = decode_cont(rec, ctx, gen)
    return pjsd(seqs, [real_seqs[i] for i in b_idx.tolist()], n=cfg.ngram, eps=cfg.pjsd_eps)


# -- the run ----------------------------------------------------------------------------------------------------


def load_or_synth(cfg: Config, run: Run):
    """The run's corpus: spoken once (by rank 0) and kept in the run folder, since espeak-ng's audio is not
    bit-reproducible; every other rank, and a resumed run, loads it."""
    import torch.distributed as dist

    from .data import Corpus, synth_corpus

    if cfg.corpus:
        if not Path(cfg.corpus).is_file():
            raise ConfigError(f"--corpus {cfg.corpus}: no such file")
        corpus = Corpus.load(cfg.corpus)
        if corpus.frontend.n_mels != cfg.n_mels:
            raise ConfigError(f"--corpus has {corpus.frontend.n_mels} mel bins, --n-mels is {cfg.n_mels}")
        return corpus
    path = run.out / "checkpoints" / "corpus.pt"
    if not path.exists() and run.is_main:
        synth_corpus(cfg.n_sentences, seed=cfg.seed, n_mels=cfg.n_mels).save(path)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return Corpus.load(path)


def prepare(cfg: Config, run: Run, env) -> dict:
    import torch

    from .pjsd import BigramBaseline, Recogniser, frame_accuracy, train_recogniser

    corpus = load_or_synth(cfg, run)
    texts = {k: set(corpus.split(k).texts) for k in ("train", "val", "test")}
    overlap = (
        len(texts["train"] & texts["val"])
        + len(texts["train"] & texts["test"])
        + len(texts["val"] & texts["test"])
    )
    if overlap:
        raise RuntimeError(f"splits share {overlap} sentences")
    for k in ("train", "val", "test"):
        if len(corpus.split(k)) < 2:
            raise ConfigError(f"the {k} split has fewer than 2 utterances; raise --n-sentences")
    n_classes = len(corpus.phonemes)
    ckpt = run.checkpoint("recogniser")
    if ckpt.exists():
        _, w, _ = ckpt.load(restore_rng=False)
        rec = Recogniser(cfg.n_mels, n_classes, cfg.rec_hidden)
        rec.load_state_dict(w["rec"])
        rec.eval()
    else:
        rec = train_recogniser(
            corpus.split("train"),
            n_classes,
            steps=cfg.rec_steps,
            hidden=cfg.rec_hidden,
            window=64,
            seed=cfg.seed,
        )
        ckpt.save(cfg.rec_steps, {"rec": rec})
    data = {"corpus": corpus, "rec": rec, "n_classes": n_classes}
    for split in ("val", "test"):
        ctx, cont, labels, owner = windows(corpus.split(split), cfg.ctx_frames, cfg.cont_frames)
        data[f"{split}_windows"] = {
            "ctx": ctx,
            "cont": cont,
            "labels": labels,
            "owner": owner,
            "real_seqs": decode_cont(rec, ctx, cont),
        }
    data["eval"] = {
        "val": eval_set(corpus.split("val"), cfg, 10_001),
        "test": eval_set(corpus.split("test"), cfg, 10_002),
    }
    data["bigram"] = BigramBaseline(corpus.split("train"), n_classes)
    test = data["test_windows"]
    full = torch.cat([test["ctx"], test["cont"]], 1)
    data["info"] = {
        "phonemes": corpus.phonemes,
        "utterances": {k: len(corpus.split(k)) for k in ("train", "val", "test")},
        "frames": {k: corpus.split(k).total_frames() for k in ("train", "val", "test")},
        "train_hours": corpus.split("train").total_frames() / corpus.frontend.frame_rate / 3600,
        "test_windows": len(test["ctx"]),
        "splits_disjoint_by_sentence": True,
        "recogniser_test_frame_accuracy": frame_accuracy(rec, full, test["labels"]),
    }
    return data


def body(cfg: Config, run: Run) -> dict:
    from paperkit import distributed
    from paperkit.device import seed_everything

    _GAMMA[0] = cfg.gamma
    env = distributed.init(cfg.device)
    seed_everything(cfg.seed)
    if cfg.batch % env.world_size:
        raise ConfigError(f"--batch {cfg.batch} is not divisible by {env.world_size} ranks")
    try:
        data = prepare(cfg, run, env)
        arms: dict[str, dict] = {}
        seeds = [cfg.seed + i for i in range(cfg.seeds)]
        for s in seeds:
            for w in sorted(set(cfg.widths)):
                key = f"seed{s}/w{w}"
                arms[key] = run.phase(
                    key, lambda key=key, w=w, s=s: train_arm(cfg, run, key, env, data, w, s)
                )
        controls = {
            s: run.phase(f"controls/seed{s}", lambda s=s: controls_for_seed(cfg, data, env, s)) for s in seeds
        }
    finally:
        distributed.shutdown()
    return analyse(cfg, run, data, arms, controls, seeds)


def controls_for_seed(cfg: Config, data: dict, env, seed: int) -> dict:
    import torch

    from .pjsd import last_phoneme, pjsd

    test = data["test_windows"]
    a, b = halves(test["owner"], seed)
    real_b = [test["real_seqs"][i] for i in b.tolist()]
    real_a = [test["real_seqs"][i] for i in a.tolist()]
    torch.manual_seed(seed * 7919 + 1)
    untrained = build_model(cfg, max(cfg.widths), cfg.patch * cfg.n_mels).to(env.device).eval()
    gen = generate(untrained, test["ctx"][a], cfg, 1.0, seed + 1, env.device)
    untrained_pjsd = pjsd(
        decode_cont(data["rec"], test["ctx"][a], gen), real_b, n=cfg.ngram, eps=cfg.pjsd_eps
    )
    ctx_seqs = data["rec"].decode(test["ctx"][a])
    bigram = data["bigram"].generate(
        last_phoneme(ctx_seqs), cfg.cont_frames, torch.Generator().manual_seed(seed)
    )
    bigram_pjsd = pjsd(
        decode_cont(data["rec"], test["ctx"][a], bigram), real_b, n=cfg.ngram, eps=cfg.pjsd_eps
    )
    floor = pjsd(real_a, real_b, n=cfg.ngram, eps=cfg.pjsd_eps)
    return {"untrained": untrained_pjsd, "bigram": bigram_pjsd, "floor": floor}


def grid_points(cfg: Config, arms: dict, seed: int):
    rows = []
    for w in sorted(set(cfg.widths)):
        arm = arms[f"seed{seed}/w{w}"]
        for e in arm["evals"]:
            rows.append((arm["N"], e["D"], e["test_loss"], w, e["steps"]))
    return rows


def analyse(cfg: Config, run: Run, data: dict, arms: dict, controls: dict, seeds: list[int]) -> dict:
    import numpy as np
    import torch

    from .scaling import fit_scaling

    w_min, w_max = min(cfg.widths), max(cfg.widths)
    s_min, s_max = min(cfg.steps), max(cfg.steps)
    s_shared = sorted(set(cfg.steps))[-2]
    fits: dict = {}
    per_seed = {
        k: []
        for k in (
            "L_wmax_smax",
            "L_wmax_sshared",
            "L_wmin_sshared",
            "L_wmax_smin",
            "err_full",
            "err_ablate",
            "err_const",
            "tpp_exp",
            "tpp_exp_shuffled",
            "pjsd",
            "untrained",
            "bigram",
            "floor",
        )
    }
    for s in seeds:
        rows = grid_points(cfg, arms, s)
        loss = {(r[3], r[4]): r[2] for r in rows}
        per_seed["L_wmax_smax"].append(loss[(w_max, s_max)])
        per_seed["L_wmax_sshared"].append(loss[(w_max, s_shared)])
        per_seed["L_wmin_sshared"].append(loss[(w_min, s_shared)])
        per_seed["L_wmax_smin"].append(loss[(w_max, s_min)])
        fit_rows = [r for r in rows if r[3] < w_max and r[4] < s_max]
        held = next(r for r in rows if r[3] == w_max and r[4] == s_max)
        n, d, l_ = (torch.tensor([r[i] for r in fit_rows], dtype=torch.float64) for i in range(3))

        def rel_err(f, held=held):
            return abs(float(f.predict(held[0], held[1])) - held[2]) / held[2]

        full = fit_scaling(n, d, l_)
        ab_n, ab_d, const = (fit_scaling(n, d, l_, terms=t) for t in ("D", "N", ""))
        all_n, all_d, all_l = (torch.tensor([r[i] for r in rows], dtype=torch.float64) for i in range(3))
        fit_all = fit_scaling(all_n, all_d, all_l)
        perm = torch.randperm(len(all_l), generator=torch.Generator().manual_seed(s))
        shuffled = fit_scaling(all_n, all_d, all_l[perm])
        per_seed["err_full"].append(rel_err(full))
        per_seed["err_ablate"].append(min(rel_err(ab_n), rel_err(ab_d)))
        per_seed["err_const"].append(rel_err(const))
        per_seed["tpp_exp"].append(fit_all.tokens_per_param_exponent())
        per_seed["tpp_exp_shuffled"].append(shuffled.tokens_per_param_exponent())
        per_seed["pjsd"].append(arms[f"seed{s}/w{w_max}"]["test_pjsd"])
        for k in ("untrained", "bigram", "floor"):
            per_seed[k].append(controls[s][k])
        fits[f"seed{s}"] = {
            "held_out": {
                "N": held[0],
                "D": held[1],
                "test_loss": held[2],
                "predicted": float(full.predict(held[0], held[1])),
            },
            "fit_small": full.to_dict(),
            "fit_ignoring_N": ab_n.to_dict(),
            "fit_ignoring_D": ab_d.to_dict(),
            "fit_constant": const.to_dict(),
            "fit_all": fit_all.to_dict(),
            "fit_shuffled": shuffled.to_dict(),
            "relative_error": {
                "full": per_seed["err_full"][-1],
                "ignoring_N": rel_err(ab_n),
                "ignoring_D": rel_err(ab_d),
                "constant": per_seed["err_const"][-1],
            },
            "isoflop": isoflop_summary(fit_all, rows),
        }
    k = len(seeds)
    if k >= 2:
        run.claim_difference(
            "loss_falls_with_N",
            f"test loss at {s_shared} steps falls with model size: L(width {w_max}) - L(width {w_min})",
            method=per_seed["L_wmax_sshared"],
            control=per_seed["L_wmin_sshared"],
            control_name=f"width {w_min}",
            op="<",
            threshold=0.0,
        )
        run.claim_difference(
            "loss_falls_with_D",
            f"test loss of the largest model falls with data: L({s_max} steps) - L({s_min} steps)",
            method=per_seed["L_wmax_smax"],
            control=per_seed["L_wmax_smin"],
            control_name=f"{s_min} steps",
            op="<",
            threshold=0.0,
        )
        run.claim_difference(
            "fit_beats_ablations",
            "L(N, D) fitted on the smaller runs predicts the held-out largest run better than the better of the "
            "fits that ignore N or D (relative error difference)",
            method=per_seed["err_full"],
            control=per_seed["err_ablate"],
            control_name="fit ignoring N or D",
            op="<",
            threshold=0.0,
        )
        run.claim_over_seeds(
            "fit_extrapolates",
            f"relative error of the fit's prediction of the held-out largest run <= {cfg.fit_error:g}",
            values=per_seed["err_full"],
            op="<=",
            threshold=cfg.fit_error,
            control=per_seed["err_const"],
            control_name="constant-loss fit",
        )
        run.claim_difference(
            "pjsd_below_untrained",
            "test pJSD (bits) of the model's continuations is below an untrained model's",
            method=per_seed["pjsd"],
            control=per_seed["untrained"],
            control_name="untrained model",
            op="<",
            threshold=0.0,
        )
        run.claim_difference(
            "pjsd_below_bigram",
            "test pJSD of the model's continuations is below a phoneme-bigram baseline's trained on the same data",
            method=per_seed["pjsd"],
            control=per_seed["bigram"],
            control_name="phoneme bigram",
            op="<",
            threshold=0.0,
        )
        run.claim_difference(
            "pjsd_above_floor",
            "test pJSD of the model's continuations is above the real-vs-real floor",
            method=per_seed["pjsd"],
            control=per_seed["floor"],
            control_name="real vs real",
            op=">",
            threshold=0.0,
        )
        run.claim_over_seeds(
            "tokens_per_param_falls",
            "the fitted compute-optimal tokens per parameter falls with compute: exponent (alpha - beta) / "
            "(alpha + beta) < 0",
            values=per_seed["tpp_exp"],
            op="<",
            threshold=0.0,
            control=per_seed["tpp_exp_shuffled"],
            control_name="fit on shuffled losses",
        )
    summary_arms = {
        key: {kk: v for kk, v in arm.items() if kk not in ("example", "example_index")}
        for key, arm in arms.items()
    }
    figures(cfg, run, data, arms, fits, seeds, per_seed)
    write_wavs(cfg, run, data, arms, seeds[0])
    means = {kk: float(np.mean(v)) for kk, v in per_seed.items() if v}
    return {
        "data": data["info"],
        "arms": summary_arms,
        "controls": {str(s): c for s, c in controls.items()},
        "fits": fits,
        "per_seed": per_seed,
        "means": means,
    }


def isoflop_summary(fit, rows) -> dict:
    cs = sorted({6.0 * r[0] * r[1] for r in rows})
    grid = [cs[0], math.sqrt(cs[0] * cs[-1]), cs[-1]]
    out = []
    for c in grid:
        n_opt, d_opt = fit.compute_optimal(c)
        kappa = float(fit.isoflop_curvature(c))
        out.append(
            {
                "C": c,
                "N_opt": float(n_opt),
                "D_opt": float(d_opt),
                "tokens_per_param": float(d_opt / n_opt),
                "curvature": kappa,
                "band_lnN_eps0.01": math.sqrt(2 * 0.01 / kappa) if kappa > 0 else None,
            }
        )
    return {"points": out, "tokens_per_param_exponent": fit.tokens_per_param_exponent()}


# -- figures and audio -----------------------------------------------------------------------------------------


def figures(
    cfg: Config, run: Run, data: dict, arms: dict, fits: dict, seeds: list[int], per_seed: dict
) -> None:
    import numpy as np
    import torch
    from paperkit.plotting import figure

    from .scaling import ScalingFit

    s0 = seeds[0]
    rows = grid_points(cfg, arms, s0)
    fit = ScalingFit(**fits[f"seed{s0}"]["fit_small"])
    fig, axes = figure(2, 1, width=5.0)
    ax = axes[0][0]
    cmap = __import__("matplotlib").colormaps["viridis"]
    widths = sorted(set(cfg.widths))
    for i, w in enumerate(widths):
        pts = [r for r in rows if r[3] == w]
        col = cmap(i / max(1, len(widths) - 1))
        ax.plot(
            [r[1] for r in pts], [r[2] for r in pts], "o", color=col, label=f"width {w} (N={pts[0][0]:,})"
        )
        dd = np.geomspace(min(r[1] for r in rows), max(r[1] for r in rows), 50)
        ax.plot(
            dd, fit.predict(torch.full((50,), float(pts[0][0])), torch.tensor(dd)).numpy(), "-", color=col
        )
    held = fits[f"seed{s0}"]["held_out"]
    ax.plot([held["D"]], [held["test_loss"]], "s", mfc="none", mec="red", ms=12, label="held out")
    ax.set_xscale("log")
    ax.set_xlabel("D (continuation tokens seen)")
    ax.set_ylabel("test loss (min-SNR v)")
    ax.set_title(f"loss grid and fit on the smaller runs (seed {s0})")
    ax.legend(fontsize=6)
    ax = axes[0][1]
    fit_all = ScalingFit(**fits[f"seed{s0}"]["fit_all"])
    cs = [p["C"] for p in fits[f"seed{s0}"]["isoflop"]["points"]]
    nmin, nmax = min(r[0] for r in rows), max(r[0] for r in rows)
    nn_ = np.geomspace(nmin / 4, nmax * 4, 80)
    for c in cs:
        ax.plot(nn_, fit_all.isoflop(c, torch.tensor(nn_)).numpy(), label=f"C={c:.2g}")
        n_opt, _ = fit_all.compute_optimal(c)
        ax.plot([float(n_opt)], [float(fit_all.isoflop(c, n_opt))], "k*")
    ax.set_xscale("log")
    ax.set_xlabel("N (parameters)")
    ax.set_ylabel("fitted loss")
    ax.set_title("isoFLOP curves of the fit on all runs (* optimum)")
    ax.legend(fontsize=7)
    run.save_figure(fig, "scaling")

    fig, axes = figure(1, 1, width=5.0)
    ax = axes[0][0]
    for s in seeds:
        ns = [arms[f"seed{s}/w{w}"]["N"] for w in widths]
        ax.plot(ns, [arms[f"seed{s}/w{w}"]["test_pjsd"] for w in widths], "o-", alpha=0.7, label=f"seed {s}")
    for name, col in (("untrained", "red"), ("bigram", "orange"), ("floor", "gray")):
        ax.axhline(float(np.mean(per_seed[name])), color=col, ls="--", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("N (parameters)")
    ax.set_ylabel(f"test pJSD ({cfg.ngram}-gram, bits)")
    ax.set_title("pJSD against size (each width at its last step)")
    ax.legend(fontsize=7)
    run.save_figure(fig, "pjsd")

    arm = arms[f"seed{s0}/w{max(cfg.widths)}"]
    test = data["test_windows"]
    i = arm["example_index"][0]
    gen = torch.tensor(arm["example"][0])
    real = torch.cat([test["ctx"][i], test["cont"][i]])
    fake = torch.cat([test["ctx"][i], gen])
    fig, axes = figure(1, 2, width=7.0, height=2.4)
    for ax, x, title in (
        (axes[0][0], real, "prompt + real continuation"),
        (axes[1][0], fake, "prompt + generated continuation"),
    ):
        ax.imshow(x.T.numpy(), origin="lower", aspect="auto", cmap="magma")
        ax.axvline(cfg.ctx_frames - 0.5, color="white", ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[1][0].set_xlabel("frame (10 ms)")
    run.save_figure(fig, "logmel")


def write_wavs(cfg: Config, run: Run, data: dict, arms: dict, seed: int) -> None:
    import soundfile as sf
    import torch

    from .mel import griffin_lim

    if not run.is_main or cfg.n_wavs <= 0:
        return
    corpus = data["corpus"]
    fe = corpus.frontend
    arm = arms[f"seed{seed}/w{max(cfg.widths)}"]
    test = data["test_windows"]
    (run.out / "audio").mkdir(exist_ok=True)
    for j, (i, gen) in enumerate(zip(arm["example_index"], arm["example"])):
        if j >= cfg.n_wavs:
            break
        for name, cont in (("real", test["cont"][i]), ("generated", torch.tensor(gen))):
            frames = corpus.denormalise(torch.cat([test["ctx"][i], cont]))
            wav = griffin_lim(fe.inverse_power(frames), fe, iters=32)
            wav = (wav / wav.abs().max().clamp(min=1e-6) * 0.9).numpy()
            sf.write(run.out / "audio" / f"test{i}_{name}.wav", wav, fe.sample_rate)


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="cdslm", config_cls=Config, presets=PRESETS, body=body, argv=argv, description=DESCRIPTION
    )
