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
    # supervised Polyak-Ruppert on digits
    sup_kappas: tuple[int, ...] = knob((1, 4, 16), "batch scales (must include 1)", low=1)
    sup_base_batch: int = knob(16, "base batch size", low=1)
    sup_lr: float = knob(0.02, "SGD learning rate at the base batch", low=0, low_open=True)
    sup_momentum: float = knob(0.0, "SGD heavy-ball momentum (not scaled)", low=0, high=0.999)
    sup_rho: float = knob(0.99, "EMA momentum at the base batch", low=0, high=0.999999)
    sup_epochs: float = knob(30.0, "passes over the training split", low=0, low_open=True)
    sup_seeds: int = knob(4, "seeds, trained as one batched model", low=1)
    sup_evals: int = knob(30, "evaluations of the EMA model along training", low=1)
    sup_hidden: int = knob(256, "MLP hidden width", low=1)
    # BYOL on digits
    byol_kappas: tuple[int, ...] = knob((1, 4, 16), "batch scales (must include 1)", low=1)
    byol_base_batch: int = knob(32, "base batch size", low=1)
    byol_optimizer: str = knob(
        "sgd", "optimizer and its scaling rule", choices=("sgd", "lars", "adam", "adamw")
    )
    byol_lr: float = knob(0.02, "learning rate at the base batch", low=0, low_open=True)
    byol_momentum: float = knob(0.9, "SGD/LARS momentum (not scaled)", low=0, high=0.999)
    byol_weight_decay: float = knob(1e-5, "weight decay", low=0)
    byol_rho: float = knob(0.99, "target EMA momentum at the base batch (cosine to 1)", low=0, high=0.999999)
    byol_epochs: float = knob(100.0, "passes over the training split", low=0, low_open=True)
    byol_seeds: int = knob(3, "seeds, trained as one batched model", low=1)
    byol_hidden: int = knob(256, "MLP hidden width", low=1)
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
        if "byol-images" in self.experiments and not self.data:
            raise ConfigError("byol-images needs --data IMAGE_FOLDER")


PRESETS = {
    "smoke": dict(
        parabola_kappas=(1, 4, 16),
        parabola_seeds=256,
        parabola_steps=2048,
        sup_kappas=(1, 4),
        sup_epochs=2.0,
        sup_seeds=2,
        sup_evals=4,
        sup_hidden=64,
        byol_kappas=(1, 4),
        byol_epochs=2.0,
        byol_seeds=1,
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
    )
    run.save_figure(plot(r), "parabola")
    for i in range(0, len(r.samples), max(1, len(r.samples) // 100)):
        run.log(
            experiment="parabola",
            samples=float(r.samples[i]),
            **{f"mean_{a}_k{k}": float(r.mean[a][k][i]) for a in ARMS for k in r.mean[a]},
        )
    return {"gap": {a: {str(k): v for k, v in g.items()} for a, g in r.gap.items()}}


def _digit_arms(cfg: Config, task: str, env, data, run: Run) -> dict:
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
    epochs, evals = (cfg.sup_epochs, cfg.sup_evals) if sup else (cfg.byol_epochs, 1)
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
                "eval_every": math.lcm(step, base_batch),
                "total_samples": step * max(1, round(total / step)),
            },
        )
        key = "progressive/byol"
        out[key] = run.phase(key, lambda: train_arm(run, key, spec, data, env))
        out[key]["switch_samples"] = switch
    return out


def _curve_gap(a: list[dict], b: list[dict], metric: str) -> float:
    ref = {p["samples"]: p[metric] for p in b}
    gaps = [abs(p[metric] - ref[p["samples"]]) for p in a if p["samples"] in ref]
    return max(gaps) if gaps else float("nan")


def supervised_claims(res: dict, run: Run) -> dict:
    ref = res["supervised/k1"]
    kappas = sorted({int(k.split("/k")[1].split("-")[0]) for k in res} - {1})
    table = {}
    for k in kappas:
        for rule in ("exp", "none"):
            arm = res[f"supervised/k{k}-{rule}"]
            table[f"k{k}-{rule}"] = {
                "final_ema_acc": arm["final"]["ema_acc"],
                "final_gap_points": 100 * abs(arm["final"]["ema_acc"] - ref["final"]["ema_acc"]),
                "curve_gap_points": 100 * _curve_gap(arm["curve"], ref["curve"], "ema_acc"),
            }
    if kappas:
        run.claim(
            "supervised_final",
            "with the rule, the EMA model's final test accuracy at every kappa is within "
            "1 point of kappa = 1 (points, max over kappa)",
            max(table[f"k{k}-exp"]["final_gap_points"] for k in kappas),
            "<=",
            1.0,
        )
        rule_gap = max(table[f"k{k}-exp"]["curve_gap_points"] for k in kappas)
        none_gap = max(table[f"k{k}-none"]["curve_gap_points"] for k in kappas)
        run.claim(
            "supervised_curves",
            "the EMA accuracy curves' largest gap to kappa = 1 is smaller with the rule "
            "than without (ratio rule / no rule)",
            rule_gap / none_gap if none_gap > 0 else float("nan"),
            "<",
            1.0,
        )
    return {"reference_final_ema_acc": ref["final"]["ema_acc"], "arms": table}


def byol_claims(res: dict, run: Run) -> dict:
    ref = res["byol/k1"]["final"]
    table = {"k1": {"probe_acc": ref["probe_acc"], "knn_acc": ref["knn_acc"]}}
    kappas = sorted({int(k.split("/k")[1].split("-")[0]) for k in res if k.startswith("byol/")} - {1})
    for k in kappas:
        for rule in ("exp", "none"):
            f = res[f"byol/k{k}-{rule}"]["final"]
            table[f"k{k}-{rule}"] = {
                "probe_acc": f["probe_acc"],
                "knn_acc": f["knn_acc"],
                "probe_gap_points": 100 * (f["probe_acc"] - ref["probe_acc"]),
            }
    if kappas:
        run.claim(
            "byol_probe",
            "BYOL with the rule: linear-probe accuracy within 2 points of kappa = 1 at every "
            "kappa (points, max over kappa)",
            max(abs(table[f"k{k}-exp"]["probe_gap_points"]) for k in kappas),
            "<=",
            2.0,
        )
    if "progressive/byol" in res:
        f = res["progressive/byol"]["final"]
        table["progressive"] = {
            "probe_acc": f["probe_acc"],
            "knn_acc": f["knn_acc"],
            "probe_gap_points": 100 * (f["probe_acc"] - ref["probe_acc"]),
        }
        run.claim(
            "progressive",
            "BYOL whose batch grows mid-training (all hyperparameters rescaled at the change) "
            "stays within 2 points of the base-batch run (probe accuracy, points)",
            abs(table["progressive"]["probe_gap_points"]),
            "<=",
            2.0,
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
            gap = par["gap"]
            ks = [k for k in gap["exp"] if 1 < int(k) <= 16]
            results["parabola"] = par
            if ks:
                run.claim(
                    "parabola",
                    "noisy parabola: with rho ** kappa the largest gap of the EMA's mean/std to "
                    "kappa = 1 is at most a quarter of the gap with rho fixed, at every kappa <= 16 "
                    "(max ratio over kappa)",
                    max(gap["exp"][k] / gap["none"][k] for k in ks),
                    "<=",
                    0.25,
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
