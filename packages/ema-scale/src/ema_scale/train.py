"""``uv run --package ema-scale train``: the paper's experiments at small scale, with claims and figures.

Experiments (``--experiments``, default all four digits/toy ones):

- ``parabola``: the noisy parabola, kappa in {1..32}, arms rho fixed / rho**kappa / 1-kappa(1-rho).
- ``supervised``: Polyak-Ruppert EMA of an MLP on scikit-learn's digits, SGD, kappa in {1, 4, 16}.
- ``byol``: BYOL on digits (the EMA target feeds the loss), kappa in {1, 4, 16}, linear probe.
- ``progressive``: BYOL whose batch grows mid-training vs BYOL at the base batch.
- ``byol-images`` (the ``paper`` preset): BYOL with a timm backbone on an image folder (``--data``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from paperkit import BaseConfig, ConfigError, Run, knob, run_trainer

EXPERIMENTS = ("parabola", "supervised", "byol", "progressive", "byol-images")


@dataclass
class Config(BaseConfig):
    experiments: tuple[str, ...] = knob(
        ("parabola", "supervised", "byol", "progressive"),
        "experiments to run, comma-separated",
        choices=EXPERIMENTS,
    )
    # noisy parabola
    parabola_kappas: tuple[int, ...] = knob((1, 2, 4, 8, 16, 32), "batch scales (must include 1)", low=1)
    parabola_seeds: int = knob(2000, "independent runs, simulated as one tensor", low=2)
    parabola_steps: int = knob(20000, "SGD steps at kappa = 1 (batch 1)", low=1)
    parabola_lr: float = knob(0.01, "SGD learning rate at kappa = 1", low=0, low_open=True)
    parabola_rho: float = knob(0.999, "EMA momentum at kappa = 1", low=0, high=0.999999)
    parabola_coupling: float = knob(0.5, "gamma: pull of the model towards its EMA (0 = pure Polyak)", low=0)
    parabola_noise: float = knob(1.0, "gradient noise std at batch 1", low=0)
    parabola_groups: int = knob(
        5, "disjoint groups of seeds (independent replicates) for the claim's interval", low=2
    )
    # supervised Polyak-Ruppert on digits
    sup_kappas: tuple[int, ...] = knob((1, 4, 16), "batch scales (must include 1)", low=1)
    sup_base_batch: int = knob(16, "base batch size", low=1)
    sup_lr: float = knob(0.02, "SGD learning rate at the base batch", low=0, low_open=True)
    sup_momentum: float = knob(0.0, "SGD heavy-ball momentum (not scaled)", low=0, high=0.999)
    sup_rho: float = knob(0.99, "EMA momentum at the base batch", low=0, high=0.999999)
    sup_epochs: float = knob(30.0, "passes over the training split", low=0, low_open=True)
    sup_seeds: int = knob(
        5, "seeds, trained as one batched model (the claims' intervals are over them)", low=1
    )
    sup_evals: int = knob(30, "evaluations of the EMA model along training", low=1)
    sup_hidden: int = knob(256, "MLP hidden width", low=1)
    # BYOL on digits
    byol_kappas: tuple[int, ...] = knob((1, 16), "batch scales (must include 1)", low=1)
    byol_base_batch: int = knob(
        8, "base batch size (small, so that kappa = 16 still takes hundreds of steps on 1,438 images)", low=1
    )
    byol_optimizer: str = knob(
        "sgd", "optimizer and its scaling rule", choices=("sgd", "lars", "adam", "adamw")
    )
    byol_lr: float = knob(
        0.0025, "learning rate at the base batch (0.01 per 32 samples, scaled linearly)", low=0, low_open=True
    )
    byol_momentum: float = knob(0.9, "SGD/LARS momentum (not scaled)", low=0, high=0.999)
    byol_weight_decay: float = knob(1e-5, "weight decay", low=0)
    byol_rho: float = knob(
        0.9975,
        "target EMA momentum at the base batch, cosine to 1 (0.99 per 32 samples)",
        low=0,
        high=0.999999,
    )
    byol_epochs: float = knob(50.0, "passes over the training split", low=0, low_open=True)
    byol_seeds: int = knob(
        5, "seeds, trained as one batched model (the claims' intervals are over them)", low=1
    )
    byol_evals: int = knob(
        10, "evaluations along training (kNN accuracy of every seed's online encoder)", low=1
    )
    byol_ghost_bn: bool = knob(
        True, "BatchNorm statistics over ghost batches of the base batch, so kappa changes nothing else"
    )
    byol_warmup_epochs: float = knob(
        5.0, "linear learning-rate warm-up, in epochs of samples seen (the same for every kappa)", low=0
    )
    byol_hidden: int = knob(128, "MLP hidden width", low=1)
    # progressive scaling
    prog_kappa: int = knob(8, "batch scale after the switch", low=1)
    prog_switch: float = knob(0.5, "fraction of training after which the batch grows", low=0, high=1)
    # BYOL on an image folder (the paper preset)
    data: str = knob("", "image folder (ImageFolder layout: DATA/CLASS/IMAGE) for byol-images")
    model: str = knob("resnet18", "timm backbone for byol-images (built with pretrained=False)")
    image_size: int = knob(32, "crop size for byol-images", low=8)
    image_load_size: int = knob(40, "images are resized to this when loaded", low=8)
    img_base_batch: int = knob(4096, "global base batch for byol-images (BYOL's)", low=1)
    img_kappa: int = knob(1, "byol-images trains at img_kappa * img_base_batch", low=1)
    img_optimizer: str = knob("lars", "optimizer for byol-images", choices=("sgd", "lars", "adam", "adamw"))
    img_lr: float = knob(
        3.2, "learning rate at the base batch (BYOL: 0.2 * 4096 / 256)", low=0, low_open=True
    )
    img_weight_decay: float = knob(1.5e-6, "weight decay (BYOL's)", low=0)
    img_rho: float = knob(
        0.996, "target momentum at the base batch (BYOL's), cosine to 1", low=0, high=0.999999
    )
    img_epochs: float = knob(300.0, "passes over the image folder", low=0, low_open=True)
    img_test_fraction: float = knob(
        0.1, "held-out fraction of the image folder for the probe", low=0, high=0.9
    )

    def check(self) -> None:
        for name in ("parabola_kappas", "sup_kappas", "byol_kappas"):
            if 1 not in getattr(self, name):
                raise ConfigError(f"--{name.replace('_', '-')} must include 1 (the reference)")
        if self.parabola_seeds % self.parabola_groups:
            raise ConfigError(
                f"--parabola-seeds {self.parabola_seeds} must split into --parabola-groups {self.parabola_groups}"
            )
        if "byol-images" in self.experiments and not self.data:
            raise ConfigError("byol-images needs --data IMAGE_FOLDER")


PRESETS = {
    "smoke": dict(
        parabola_kappas=(1, 4, 16),
        parabola_seeds=320,
        parabola_steps=2048,
        sup_kappas=(1, 4),
        sup_epochs=2.0,
        sup_seeds=2,
        sup_evals=4,
        sup_hidden=64,
        byol_kappas=(1, 4),
        byol_base_batch=32,
        byol_warmup_epochs=0.0,
        byol_epochs=2.0,
        byol_seeds=2,
        byol_evals=2,
        byol_hidden=64,
        checkpoint_every=50,
    ),
    "default": {},
    "paper": dict(
        experiments=("byol-images",),
        model="resnet18",
        image_size=96,
        image_load_size=112,
        img_base_batch=4096,
        img_kappa=1,
        img_epochs=300.0,
        checkpoint_every=1000,
    ),
}


def _kappas(ks: tuple[int, ...]) -> list[int]:
    return sorted(set(ks))


# -- experiments -------------------------------------------------------------------------------------------


def run_parabola(cfg: Config, run: Run) -> dict:
    from .parabola import ARMS, plot, simulate

    r = simulate(
        cfg.parabola_kappas,
        seeds=cfg.parabola_seeds,
        base_steps=cfg.parabola_steps,
        lr=cfg.parabola_lr,
        rho=cfg.parabola_rho,
        coupling=cfg.parabola_coupling,
        noise=cfg.parabola_noise,
        seed=cfg.seed,
        groups=cfg.parabola_groups,
    )
    run.save_figure(plot(r), "parabola")
    for i in range(0, len(r.samples), max(1, len(r.samples) // 100)):
        run.log(
            experiment="parabola",
            samples=float(r.samples[i]),
            **{f"mean_{a}_k{k}": float(r.mean[a][k][i]) for a in ARMS for k in r.mean[a]},
        )
    return {
        "gap": {a: {str(k): v for k, v in g.items()} for a, g in r.gap.items()},
        "group_gap": {a: {str(k): v for k, v in g.items()} for a, g in r.group_gap.items()},
    }


def _digit_arms(cfg: Config, task: str, env, data, run: Run) -> dict:
    from dataclasses import replace

    from .digits import ArmSpec, train_arm
    from .rules import BatchSchedule, Hparams

    sup = task == "supervised"
    base_batch = cfg.sup_base_batch if sup else cfg.byol_base_batch
    kappas = _kappas(cfg.sup_kappas if sup else cfg.byol_kappas)
    biggest = base_batch * kappas[-1]
    for k in kappas:
        if (base_batch * k) % env.world_size:
            raise ConfigError(
                f"{task}: global batch {base_batch * k} is not divisible by {env.world_size} ranks"
            )
    n = data["x_train"].shape[0]
    epochs, evals = (cfg.sup_epochs, cfg.sup_evals) if sup else (cfg.byol_epochs, cfg.byol_evals)
    eval_every = biggest * max(1, math.ceil(epochs * n / (evals * biggest)))
    total = eval_every * max(1, round(epochs * n / eval_every))
    if sup:
        base = Hparams("sgd", lr=cfg.sup_lr, momentum=cfg.sup_momentum, ema_momentum=cfg.sup_rho)
    else:
        base = Hparams(
            cfg.byol_optimizer,
            lr=cfg.byol_lr,
            momentum=cfg.byol_momentum,
            weight_decay=cfg.byol_weight_decay,
            ema_momentum=cfg.byol_rho,
        )
    common = dict(
        task=task,
        base=base,
        total_samples=total,
        eval_every=eval_every,
        seeds=cfg.sup_seeds if sup else cfg.byol_seeds,
        seed=cfg.seed,
        hidden=cfg.sup_hidden if sup else cfg.byol_hidden,
        cosine_ema=not sup,
        curve_knn=not sup,
        ghost_bn=not sup and cfg.byol_ghost_bn,
        warmup_samples=0 if sup else int(round(cfg.byol_warmup_epochs * n)),
    )
    out = {}
    for k in kappas:
        for rule in ("exp",) if k == 1 else ("exp", "none"):
            key = f"{task}/k{k}" + ("" if k == 1 else f"-{rule}")
            spec = ArmSpec(schedule=BatchSchedule.constant(base_batch, k), ema_rule=rule, **common)
            out[key] = run.phase(key, lambda spec=spec, key=key: train_arm(run, key, spec, data, env))
    if task == "byol" and "progressive" in cfg.experiments:
        step = base_batch * cfg.prog_kappa
        switch = step * round(cfg.prog_switch * total / step)
        spec = ArmSpec(
            schedule=BatchSchedule(base_batch, ((0, base_batch), (switch, step))),
            ema_rule="exp",
            **{
                **common,
                "eval_every": math.lcm(step, eval_every),
                "total_samples": step * max(1, round(total / step)),
            },
        )
        for rule in ("exp", "none"):  # the rule, and its control: rho fixed when the batch grows
            key = f"progressive/byol-{rule}"
            prog = replace(spec, ema_rule=rule)
            out[key] = run.phase(key, lambda prog=prog, key=key: train_arm(run, key, prog, data, env))
            out[key]["switch_samples"] = switch
    return out


def _seed_curve_gaps(a: list[dict], b: list[dict], metric: str, scale: float = 100.0) -> list[float]:
    """Per seed: the largest |a - b| of ``metric`` (per-seed lists) over the evaluation points both curves share,
    times ``scale`` (accuracies in points)."""
    ref = {p["samples"]: p[f"{metric}_seeds"] for p in b}
    shared = [(p[f"{metric}_seeds"], ref[p["samples"]]) for p in a if p["samples"] in ref]
    if not shared:
        return []
    return [scale * max(abs(x[s] - y[s]) for x, y in shared) for s in range(len(shared[0][0]))]


def _arm_kappas(res: dict, task: str) -> list[int]:
    return sorted({int(k.split("/k")[1].split("-")[0]) for k in res if k.startswith(f"{task}/")} - {1})


def supervised_claims(res: dict, run: Run) -> dict:
    ref = res["supervised/k1"]
    kappas = _arm_kappas(res, "supervised")
    ref_final = ref["curve"][-1]["ema_acc_seeds"]
    table: dict = {}
    for k in kappas:
        for rule in ("exp", "none"):
            arm = res[f"supervised/k{k}-{rule}"]
            final = arm["curve"][-1]["ema_acc_seeds"]
            table[f"k{k}-{rule}"] = {
                "final_ema_acc": arm["final"]["ema_acc"],
                "final_gap_points_seeds": [100 * abs(x - y) for x, y in zip(final, ref_final)],
                "curve_gap_points_seeds": _seed_curve_gaps(arm["curve"], ref["curve"], "ema_acc"),
            }
    if kappas:

        def worst(rule: str, key: str) -> list[float]:  # per seed, the largest gap over kappa
            return [max(v) for v in zip(*(table[f"k{k}-{rule}"][key] for k in kappas))]

        run.claim_over_seeds(
            "supervised_final",
            "with the rule, the EMA model's final test accuracy at every kappa is within 1 point of kappa = 1 "
            "(points, per seed the largest gap over kappa)",
            values=worst("exp", "final_gap_points_seeds"),
            op="<=",
            threshold=1.0,
            control=worst("none", "final_gap_points_seeds"),
            control_name="rho fixed",
        )
        run.claim_difference(
            "supervised_curves",
            "the EMA accuracy curve's largest gap to kappa = 1 (per seed, over training and kappa) is smaller with "
            "the rule than with rho fixed (points, paired over seeds)",
            method=worst("exp", "curve_gap_points_seeds"),
            control=worst("none", "curve_gap_points_seeds"),
            control_name="rho fixed",
            op="<",
            threshold=0.0,
        )
    return {"reference_final_ema_acc": ref["final"]["ema_acc"], "arms": table}


def byol_claims(res: dict, run: Run) -> dict:
    ref = res["byol/k1"]
    table: dict = {
        "k1": {
            "probe_acc": ref["final"]["probe_acc"],
            "knn_acc": ref["final"]["knn_acc"],
            "knn_acc_seeds": ref["final"]["knn_acc_seeds"],
        }
    }
    kappas = _arm_kappas(res, "byol")
    names = {f"k{k}-{rule}": f"byol/k{k}-{rule}" for k in kappas for rule in ("exp", "none")}
    names.update({f"progressive-{rule}": f"progressive/byol-{rule}" for rule in ("exp", "none")})
    for key, name in names.items():
        arm = res.get(name)
        if not arm:
            continue
        f = arm["final"]
        table[key] = {
            "probe_acc": f["probe_acc"],
            "knn_acc": f["knn_acc"],
            "knn_acc_seeds": f["knn_acc_seeds"],
            "knn_curve_gap_points_seeds": _seed_curve_gaps(arm["curve"], ref["curve"], "knn_acc"),
            "loss_curve_gap_seeds": _seed_curve_gaps(arm["curve"], ref["curve"], "loss", scale=1.0),
            "knn_final_gap_points_seeds": [
                100 * (x - y) for x, y in zip(f["knn_acc_seeds"], ref["final"]["knn_acc_seeds"])
            ],
        }
    if kappas:
        k = kappas[-1]
        rule = table[f"k{k}-exp"]["knn_curve_gap_points_seeds"]
        fixed = table[f"k{k}-none"]["knn_curve_gap_points_seeds"]
        run.claim_difference(
            "byol_curves",
            f"BYOL at kappa = {k}: the kNN-accuracy curve's largest gap to kappa = 1 along training (per seed) is "
            "smaller with the rule than with rho fixed (points, paired over seeds)",
            method=rule,
            control=fixed,
            control_name="rho fixed",
            op="<",
            threshold=0.0,
        )
        run.claim_difference(
            "byol_loss_curves",
            f"BYOL at kappa = {k}: the training-loss curve's largest gap to kappa = 1 along training (per seed, "
            "loss units; the loss is 2 - 2 cos per view pair) is smaller with the rule than with rho fixed (paired "
            "over seeds)",
            method=table[f"k{k}-exp"]["loss_curve_gap_seeds"],
            control=table[f"k{k}-none"]["loss_curve_gap_seeds"],
            control_name="rho fixed",
            op="<",
            threshold=0.0,
        )
        run.claim_over_seeds(
            "byol_within_2",
            f"BYOL at kappa = {k} with the rule: the kNN-accuracy curve stays within 2 points of kappa = 1 all "
            "along training (per seed, largest gap, points)",
            values=rule,
            op="<=",
            threshold=2.0,
            control=fixed,
            control_name="rho fixed",
        )
    if "progressive-exp" in table and "progressive-none" in table:
        run.claim_over_seeds(
            "progressive",
            "BYOL whose batch grows mid-training, every hyperparameter rescaled at the change (rho ** kappa), "
            "stays within 2 points of the base-batch run all along training (kNN accuracy, per seed largest gap)",
            values=table["progressive-exp"]["knn_curve_gap_points_seeds"],
            op="<=",
            threshold=2.0,
            control=table["progressive-none"]["knn_curve_gap_points_seeds"],
            control_name="progressive, rho fixed",
        )
        run.claim_difference(
            "progressive_loss",
            "BYOL whose batch grows mid-training: the training-loss curve's largest gap to the base-batch run "
            "(per seed) is smaller with rho ** kappa than with rho fixed at the change (paired over seeds)",
            method=table["progressive-exp"]["loss_curve_gap_seeds"],
            control=table["progressive-none"]["loss_curve_gap_seeds"],
            control_name="progressive, rho fixed",
            op="<",
            threshold=0.0,
        )
    return table


def plot_digits(res: dict, run: Run) -> None:
    from paperkit.plotting import figure

    sup = {k: v for k, v in res.items() if k.startswith("supervised/")}
    if sup:
        fig, axes = figure(2, 1)
        for ax, rule in zip(axes[0], ("exp", "none")):
            for key, arm in sorted(sup.items()):
                if key.endswith(f"-{'none' if rule == 'exp' else 'exp'}"):
                    continue
                ax.plot(
                    [p["samples"] for p in arm["curve"]], [p["ema_acc"] for p in arm["curve"]], label=key[11:]
                )
            ax.set_title("rho ** kappa (rule)" if rule == "exp" else "rho fixed")
            ax.set_xlabel("samples seen")
            ax.set_ylabel("EMA model test accuracy")
            ax.legend(fontsize=7)
        run.save_figure(fig, "supervised")
    byol = {k: v for k, v in res.items() if k.startswith(("byol/", "progressive/"))}
    if byol:
        fig, axes = figure(1, 1, width=5.5)
        names = sorted(byol)
        ax = axes[0][0]
        ax.bar(
            range(len(names)),
            [byol[n]["final"]["probe_acc"] for n in names],
            color=["tab:green" if "none" not in n else "tab:red" for n in names],
        )
        ax.set_xticks(
            range(len(names)),
            [n.split("/", 1)[1] if n.startswith("byol") else "progressive" for n in names],
            rotation=30,
            fontsize=8,
        )
        lo = min(byol[n]["final"]["probe_acc"] for n in names)
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.set_ylabel("linear-probe accuracy (online encoder)")
        ax.set_title("BYOL on digits: green = rule, red = rho fixed")
        run.save_figure(fig, "byol")


def run_images(cfg: Config, env, run: Run) -> dict:
    import torch
    from paperkit.data import image_folder

    from .digits import ArmSpec, train_arm
    from .rules import BatchSchedule, Hparams

    folder = image_folder(cfg.data, size=cfg.image_load_size)
    x, y = folder["images"], folder["labels"]
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed))
    n_test = max(1, int(round(len(x) * cfg.img_test_fraction)))
    test, train = perm[:n_test], perm[n_test:]
    data = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
    batch = cfg.img_base_batch * cfg.img_kappa
    if batch % env.world_size:
        raise ConfigError(f"global batch {batch} is not divisible by {env.world_size} ranks")
    n = data["x_train"].shape[0]
    total = batch * max(1, round(cfg.img_epochs * n / batch))
    base = Hparams(
        cfg.img_optimizer,
        lr=cfg.img_lr,
        momentum=0.9,
        weight_decay=cfg.img_weight_decay,
        ema_momentum=cfg.img_rho,
    )
    spec = ArmSpec(
        task="byol-images",
        schedule=BatchSchedule.constant(cfg.img_base_batch, cfg.img_kappa),
        base=base,
        ema_rule="exp",
        total_samples=total,
        eval_every=batch,
        seeds=1,
        seed=cfg.seed,
        cosine_ema=True,
        model_name=cfg.model,
        image_size=cfg.image_size,
    )
    res = run.phase("byol-images", lambda: train_arm(run, "byol-images", spec, data, env))
    res["classes"] = folder["classes"]
    return res


def body(cfg: Config, run: Run) -> dict:
    from paperkit import distributed
    from paperkit.data import digits
    from paperkit.device import seed_everything

    env = distributed.init(cfg.device)
    seed_everything(cfg.seed)
    results: dict = {"world_size": env.world_size, "device": str(env.device)}
    try:
        if "parabola" in cfg.experiments:
            par = run.phase("parabola", lambda: run_parabola(cfg, run))
            gg = par["group_gap"]
            ks = [k for k in gg["exp"] if 1 < int(k) <= 16]
            results["parabola"] = par
            if ks:

                def worst(arm: str) -> list[float]:  # per group of seeds: the largest gap over kappa <= 16
                    return [max(v) for v in zip(*(gg[arm][k] for k in ks))]

                run.claim_over_seeds(
                    "parabola",
                    "noisy parabola: with rho ** kappa the EMA's mean and std stay within 0.05 of kappa = 1 "
                    f"(theta_0 = 1) along all of training, at every kappa <= 16 (largest gap over kappa; interval "
                    f"over {cfg.parabola_groups} disjoint groups of {cfg.parabola_seeds // cfg.parabola_groups} "
                    "seeds)",
                    values=worst("exp"),
                    op="<=",
                    threshold=0.05,
                    control=worst("none"),
                    control_name="rho fixed",
                )
        wants_digits = {"supervised", "byol", "progressive"} & set(cfg.experiments)
        if wants_digits:
            data = digits(seed=cfg.seed)
            arms: dict = {}
            if "supervised" in cfg.experiments:
                arms.update(_digit_arms(cfg, "supervised", env, data, run))
                results["supervised"] = supervised_claims(arms, run)
            if {"byol", "progressive"} & set(cfg.experiments):
                c = cfg if "byol" in cfg.experiments else _only_base(cfg)
                arms.update(_digit_arms(c, "byol", env, data, run))
                results["byol"] = byol_claims(arms, run)
            plot_digits(arms, run)
            results["curves"] = {k: v["curve"] for k, v in arms.items()}
        if "byol-images" in cfg.experiments:
            results["byol_images"] = run_images(cfg, env, run)
    finally:
        distributed.shutdown()
    return results


def _only_base(cfg: Config) -> Config:
    from dataclasses import replace

    return replace(cfg, byol_kappas=(1,))


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="ema-scale", config_cls=Config, presets=PRESETS, body=body, argv=argv, description=__doc__
    )
