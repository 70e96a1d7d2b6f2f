"""The default experiment: Waterbirds-digits, DINO, Fisher, stacked fine-tuning arms, claims over seeds."""

from __future__ import annotations

import math

import numpy as np
import torch
from paperkit import Run
from paperkit.device import resolve_device, step_generator
from paperkit.evaluation import knn_accuracy

from .data import augment, balanced_groups, digit_splits, redraw_background, waterbirds_digits
from .dino import DINO, MLPBackbone, SSLModel
from .finetune import Arm, StackedFinetune
from .fisher import diagonal_fisher, load_fisher, normalise, save_fisher
from .groups import group_accuracy


def build_ssl(cfg) -> SSLModel:
    return SSLModel(
        MLPBackbone(256, cfg.hidden, cfg.feat_dim),
        cfg.feat_dim,
        hidden=cfg.hidden,
        bottleneck=cfg.bottleneck,
        prototypes=cfg.prototypes,
        student_temp=cfg.student_temp,
    )


def seed_data(cfg, seed: int, correlation: float) -> dict:
    """The splits of one seed: disjoint digit images; biased train, balanced val/test, balanced pretraining."""
    sp = digit_splits(
        {
            "pretrain": cfg.split_pretrain,
            "train": cfg.split_train,
            "val": cfg.split_val,
            "test": cfg.split_test,
        },
        seed=seed,
    )
    amp = cfg.amplitude
    return {
        "indices": sp,
        "pretrain": waterbirds_digits(sp["pretrain"], correlation=None, seed=seed * 10 + 1, amplitude=amp),
        "train": waterbirds_digits(sp["train"], correlation=correlation, seed=seed * 10 + 2, amplitude=amp),
        "val": balanced_groups(sp["val"], seed=seed * 10 + 3, amplitude=amp),
        "test": balanced_groups(sp["test"], seed=seed * 10 + 4, amplitude=amp),
    }


# -- 1. DINO ----------------------------------------------------------------------------------------------------


def pretrain(cfg, run: Run, seed: int, data: dict, device) -> tuple[SSLModel, dict]:
    torch.manual_seed(seed)
    model = build_ssl(cfg).to(device)
    total = cfg.pre_steps * cfg.pre_batch
    dino = DINO(
        model,
        momentum=cfg.teacher_momentum,
        total_samples=total,
        base_batch_size=cfg.pre_batch,
        teacher_temp=cfg.teacher_temp,
        centering=cfg.centering,
    ).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pre_lr, weight_decay=cfg.pre_weight_decay)
    ck = run.checkpoint(f"pretrain/s{seed}")
    start = 0
    if ck.exists():
        start, w, st = ck.load(restore_rng=False)
        dino.load_state_dict(w["dino"])
        opt.load_state_dict(st["opt"])
    if start < cfg.pre_steps:
        idx_pool = data["indices"]["pretrain"]
        x_pool = data["pretrain"].x

        def save(done: int) -> None:
            ck.save(done, {"dino": dino}, {"opt": opt.state_dict()})

        log_every = max(1, cfg.pre_steps // 20)
        for step in run.steps(cfg.pre_steps, start=start, desc=f"DINO seed {seed}", save=save):
            gen = step_generator(seed, 1, step)
            pick = torch.randint(0, len(idx_pool), (cfg.pre_batch,), generator=gen)
            if cfg.redraw_background:
                views = [
                    augment(redraw_background(idx_pool[pick.numpy()], gen, amplitude=cfg.amplitude), gen)
                ]
                views.append(
                    augment(redraw_background(idx_pool[pick.numpy()], gen, amplitude=cfg.amplitude), gen)
                )
            else:
                views = [augment(x_pool[pick], gen), augment(x_pool[pick], gen)]
            loss = dino.loss(*(v.to(device) for v in views))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            dino.update(cfg.pre_batch)
            value = run.check_finite(loss.item(), where=f"DINO seed {seed} step {step}")
            if step % log_every == 0 or step == cfg.pre_steps - 1:
                run.log(
                    phase="pretrain",
                    seed=seed,
                    step=step,
                    loss=value,
                    teacher_momentum=dino.teacher.momentum_at(),
                )
        save(cfg.pre_steps)
    ssl = dino.teacher.module  # DINO evaluates (and we anchor to) the teacher
    with torch.no_grad():
        bank, query = ssl.backbone(data["pretrain"].x.to(device)), ssl.backbone(data["test"].x.to(device))
    stats = {
        "knn_digit": knn_accuracy(bank, data["pretrain"].digit, query, data["test"].digit, k=cfg.knn_k),
        "knn_texture": knn_accuracy(bank, data["pretrain"].a, query, data["test"].a, k=cfg.knn_k),
        "knn_digit_pixels": knn_accuracy(
            data["pretrain"].x, data["pretrain"].digit, data["test"].x, data["test"].digit, k=cfg.knn_k
        ),
    }
    return ssl, stats


# -- 2. Fisher --------------------------------------------------------------------------------------------------


def compute_fisher(cfg, run: Run, seed: int, ssl: SSLModel, data: dict, device) -> dict:
    ssl.eval()
    x = data["pretrain"].x[: cfg.fisher_samples].to(device)
    names = [f"backbone.{n}" for n, _ in ssl.backbone.named_parameters()]
    batches: list = [x[i : i + 256] for i in range(0, len(x), 256)]
    if cfg.fisher_variant == "empirical":
        with torch.no_grad():
            batches = [(b, ssl(b).argmax(-1)) for b in batches]
    raw = diagonal_fisher(
        ssl,
        batches,
        variant=cfg.fisher_variant,
        params=names,
        log_prob=ssl.output_log_prob,
        generator=torch.Generator().manual_seed(seed),
    )
    raw = {n[len("backbone.") :]: v for n, v in raw.items()}
    fisher = normalise(raw, cfg.fisher_norm, floor=cfg.fisher_floor)
    path = run.out / f"fisher-s{seed}.safetensors"
    if run.is_main:
        save_fisher(
            path,
            fisher,
            ssl.backbone,
            variant=cfg.fisher_variant,
            samples=int(len(x)),
            normalisation=cfg.fisher_norm,
            floor=cfg.fisher_floor,
        )
    flat = torch.cat([v.reshape(-1) for v in raw.values()])
    return {
        "file": path.name,
        "raw_mean": float(flat.mean()),
        "max_over_mean": float(flat.max() / flat.mean()),
        "fraction_below_1pct_of_mean": float((flat < 0.01 * flat.mean()).float().mean()),
    }


# -- 3. fine-tuning ---------------------------------------------------------------------------------------------


def arms_for(cfg, *, with_l2sp: bool) -> list[Arm]:
    arms = [Arm("ft", 0.0)] + [Arm("ewc", lam) for lam in cfg.lams]
    if with_l2sp:
        arms += [Arm("l2sp", lam) for lam in cfg.lams]
    return arms


def finetune(
    cfg, run: Run, seed: int, ssl: SSLModel, fisher: dict, data: dict, correlation: float, device
) -> dict:
    key = f"finetune/s{seed}/c{correlation:g}"
    arms = arms_for(cfg, with_l2sp=correlation == cfg.correlation)
    sf = StackedFinetune(ssl.backbone, cfg.feat_dim, arms, fisher, seed=seed).to(device)
    opt = torch.optim.Adam([sf.theta], lr=cfg.ft_lr)
    opt_head = torch.optim.Adam([sf.head_w, sf.head_b], lr=cfg.head_lr)
    train = data["train"]
    x, y = train.x.to(device), train.y.to(device)
    n = len(y)
    per_epoch = math.ceil(n / cfg.ft_batch)
    total = cfg.ft_epochs * per_epoch
    ck = run.checkpoint(key)
    start = 0
    if ck.exists():
        start, w, st = ck.load(restore_rng=False)
        sf.load_state_dict(w["arms"])
        opt.load_state_dict(st["opt"])
        opt_head.load_state_dict(st["opt_head"])
    else:
        # linear-probe warm start of the (shared) head on frozen SSL features, full batch
        with torch.no_grad():
            feats = sf.features(x)
        warm = torch.optim.Adam([sf.head_w, sf.head_b], lr=cfg.head_lr)
        for _ in range(cfg.lp_steps):
            logits = torch.baddbmm(sf.head_b, feats, sf.head_w)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.repeat(len(arms))
            )
            warm.zero_grad(set_to_none=True)
            loss.backward()
            warm.step()

    def save(done: int) -> None:
        ck.save(done, {"arms": sf}, {"opt": opt.state_dict(), "opt_head": opt_head.state_dict()})

    log_every = max(1, total // 20)
    for step in run.steps(total, start=start, desc=f"fine-tune seed {seed} corr {correlation:g}", save=save):
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=step_generator(seed, 2, int(correlation * 1000), epoch)).to(device)
        idx = perm[pos * cfg.ft_batch : (pos + 1) * cfg.ft_batch]
        factor = 0.5 * (1 + math.cos(math.pi * step / total))
        opt.param_groups[0]["lr"] = cfg.ft_lr * factor
        opt_head.param_groups[0]["lr"] = cfg.head_lr * factor
        loss, ce, pen = sf.loss(x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        opt_head.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        opt_head.step()
        run.check_finite(loss.item(), where=f"{key} step {step}")
        if step % log_every == 0 or step == total - 1:
            run.log(
                phase="finetune",
                seed=seed,
                correlation=correlation,
                step=step,
                **{f"ce/{a.name}": float(c) for a, c in zip(arms, ce)},
                **{f"penalty/{a.name}": float(p) for a, p in zip(arms, pen)},
            )
    if start < total:
        save(total)
    return evaluate(cfg, sf, arms, data, device)


@torch.no_grad()
def evaluate(cfg, sf: StackedFinetune, arms: list[Arm], data: dict, device) -> dict:
    out = {}
    split_acc = {}
    for split in ("train", "val", "test"):
        d = data[split]
        split_acc[split] = group_accuracy(sf.predict(d.x.to(device)).cpu(), d.y, d.group)
    bank = sf.embed(data["pretrain"].x.to(device)).cpu()
    query = sf.embed(data["test"].x.to(device)).cpu()
    dist = sf.distance().cpu()
    for i, arm in enumerate(arms):
        out[arm.name] = {
            "kind": arm.kind,
            "lam": arm.lam,
            **{f"{s}_{m}": split_acc[s][m][i] for s in split_acc for m in ("worst", "average")},
            "test_per_group": split_acc["test"]["per_group"][i],
            "knn_digit": knn_accuracy(
                bank[i], data["pretrain"].digit, query[i], data["test"].digit, k=cfg.knn_k
            ),
            "distance": float(dist[i]),
        }
    return out


def select(arms: dict, kind: str) -> str:
    """The arm of ``kind`` with the best validation worst-group accuracy (ties: better validation average,
    then the smaller lambda)."""
    cands = [(name, a) for name, a in arms.items() if a["kind"] == kind]
    if not cands:
        raise ValueError(f"no {kind} arm")
    return max(cands, key=lambda t: (t[1]["val_worst"], t[1]["val_average"], -t[1]["lam"]))[0]


# -- the experiment ---------------------------------------------------------------------------------------------


def run_digits(cfg, run: Run) -> dict:
    device = resolve_device(cfg.device)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    per_seed: dict = {}
    correlations = [cfg.correlation] + ([cfg.sanity_correlation] if cfg.sanity_correlation > 0 else [])
    for seed in seeds:
        per_seed[str(seed)] = run_seed(cfg, run, seed, correlations, device)
    return summarise(cfg, run, per_seed, correlations)


def run_seed(cfg, run: Run, seed: int, correlations: list[float], device) -> dict:
    """Pretraining, Fisher and fine-tuning arms of one seed, each a phase of the run (resumable)."""
    rec: dict = {}
    data = {c: seed_data(cfg, seed, c) for c in correlations}
    base = data[cfg.correlation]
    holder: dict = {}

    def do_pretrain():
        holder["ssl"], stats = pretrain(cfg, run, seed, base, device)
        return stats

    rec["pretrain"] = run.phase(f"pretrain/s{seed}", do_pretrain)
    if "ssl" not in holder:  # resumed after this phase: the teacher's weights are in the checkpoint
        holder["ssl"], _ = _load_ssl(cfg, run, seed, device)
    ssl = holder["ssl"]
    rec["fisher"] = run.phase(f"fisher/s{seed}", lambda: compute_fisher(cfg, run, seed, ssl, base, device))
    fisher = load_fisher(run.out / rec["fisher"]["file"], ssl.backbone, device=device)
    rec["arms"] = {}
    for c in correlations:
        rec["arms"][f"{c:g}"] = run.phase(
            f"finetune/s{seed}/c{c:g}",
            lambda c=c: finetune(cfg, run, seed, ssl, fisher, data[c], c, device),
        )
    return rec


def _load_ssl(cfg, run: Run, seed: int, device):
    torch.manual_seed(seed)
    model = build_ssl(cfg).to(device)
    dino = DINO(
        model,
        momentum=cfg.teacher_momentum,
        total_samples=cfg.pre_steps * cfg.pre_batch,
        base_batch_size=cfg.pre_batch,
        teacher_temp=cfg.teacher_temp,
        centering=cfg.centering,
    ).to(device)
    _, w, _ = run.checkpoint(f"pretrain/s{seed}").load(restore_rng=False)
    dino.load_state_dict(w["dino"])
    return dino.teacher.module, dino


def summarise(cfg, run: Run, per_seed: dict, correlations: list[float]) -> dict:
    main_c = f"{cfg.correlation:g}"
    pts = 100.0
    ft, ewc, l2sp, ft_knn, ewc_knn, chosen = [], [], [], [], [], {"ewc": [], "l2sp": []}
    ft_avg, ewc_avg = [], []
    for rec in per_seed.values():
        arms = rec["arms"][main_c]
        e, l = select(arms, "ewc"), select(arms, "l2sp")
        chosen["ewc"].append(arms[e]["lam"])
        chosen["l2sp"].append(arms[l]["lam"])
        ft.append(pts * arms["ft"]["test_worst"])
        ewc.append(pts * arms[e]["test_worst"])
        l2sp.append(pts * arms[l]["test_worst"])
        ft_avg.append(pts * arms["ft"]["test_average"])
        ewc_avg.append(pts * arms[e]["test_average"])
        ft_knn.append(pts * arms["ft"]["knn_digit"])
        ewc_knn.append(pts * arms[e]["knn_digit"])
    run.claim_difference(
        "ewc_worst_group",
        f"EWC (lambda chosen on validation) beats plain fine-tuning on test worst-group accuracy at "
        f"{cfg.correlation:g} correlation (points)",
        method=ewc,
        control=ft,
        control_name="plain fine-tuning (lambda = 0)",
        op=">",
        threshold=0.0,
    )
    run.claim_difference(
        "reverse_transfer",
        "EWC keeps more of the SSL model's kNN digit accuracy on the pretraining distribution than plain "
        "fine-tuning (points)",
        method=ewc_knn,
        control=ft_knn,
        control_name="plain fine-tuning (lambda = 0)",
        op=">",
        threshold=0.0,
    )
    run.claim_difference(
        "fisher_vs_l2sp",
        "Fisher-weighted EWC beats L2-SP (F = 1, same lambda grid, chosen on validation) on test worst-group "
        "accuracy (points; reported whatever it shows)",
        method=ewc,
        control=l2sp,
        control_name="L2-SP (F = 1)",
        op=">",
        threshold=0.0,
    )
    results: dict = {
        "seeds": list(per_seed),
        "test_worst_group": {"ft": ft, "ewc": ewc, "l2sp": l2sp},
        "test_average": {"ft": ft_avg, "ewc": ewc_avg},
        "knn_digit": {"ft": ft_knn, "ewc": ewc_knn},
        "chosen_lambda": chosen,
        "pretrain": {s: r["pretrain"] for s, r in per_seed.items()},
        "fisher": {s: r["fisher"] for s, r in per_seed.items()},
        "arms": {s: r["arms"] for s, r in per_seed.items()},
    }
    if len(correlations) > 1:
        sc = f"{correlations[1]:g}"
        gap_main = [e - f for e, f in zip(ewc, ft)]
        gap_sanity = []
        for rec in per_seed.values():
            arms = rec["arms"][sc]
            gap_sanity.append(pts * (arms[select(arms, "ewc")]["test_worst"] - arms["ft"]["test_worst"]))
        run.claim_difference(
            "gap_closes_without_bias",
            f"the EWC-minus-fine-tuning worst-group gap is larger at {cfg.correlation:g} correlation than at "
            f"{correlations[1]:g} (no spurious feature) (points)",
            method=gap_main,
            control=gap_sanity,
            control_name=f"correlation {correlations[1]:g}",
            op=">",
            threshold=0.0,
        )
        results["gap"] = {main_c: gap_main, sc: gap_sanity}
    plot(cfg, run, per_seed, main_c)
    return results


def plot(cfg, run: Run, per_seed: dict, main_c: str) -> None:
    from paperkit.plotting import figure

    fig, axes = figure(2, 1, width=4.6)
    lams = list(cfg.lams)
    for ax, metric, title in (
        (axes[0][0], "test_worst", "test worst-group accuracy"),
        (axes[0][1], "knn_digit", "kNN digit accuracy (pretraining data)"),
    ):
        for kind, colour in (("ewc", "tab:blue"), ("l2sp", "tab:orange")):
            vals = np.array(
                [[r["arms"][main_c][f"{kind}/{lam:g}"][metric] for lam in lams] for r in per_seed.values()]
            )
            ax.errorbar(
                lams, vals.mean(0), yerr=vals.std(0), label=kind.upper(), color=colour, marker="o", capsize=3
            )
        ftv = np.array([r["arms"][main_c]["ft"][metric] for r in per_seed.values()])
        ax.axhline(ftv.mean(), color="k", ls="--", label="fine-tuning (lambda = 0)")
        ax.set_xscale("log")
        ax.set_xlabel("lambda")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    run.save_figure(fig, "lambda_sweep")
