"""The digits experiments: supervised Polyak-Ruppert EMA and BYOL, several seeds in one batched model.

Every seed is one slice of a batched MLP (weights ``[S, in, out]``, one ``baddbmm`` per layer), so S seeds cost
one forward pass. Data come as one stream of samples per seed (epoch permutations laid end to end): a step at
batch ``kappa * B`` consumes exactly the samples of the ``kappa`` base steps it replaces, so arms differ by their
scaling, not by their data order. The loop (:func:`train_arm`) recomputes every scaled hyperparameter when the
batch changes (progressive scaling), checkpoints and resumes exactly, and splits each global batch over torchrun
ranks (DDP averages the gradients, so 2 ranks x B/2 equals 1 rank x B up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from paperkit.device import autocast, step_generator
from paperkit.distributed import DistEnv, all_reduce_mean, unwrap, wrap_ddp
from paperkit.ema import Cosine, ScaledEMA
from paperkit.evaluation import knn_accuracy, linear_probe
from torch import nn

from .rules import BatchSchedule, Hparams, apply_hparams, build_optimizer, scale_hparams

# -- batched-seed layers ----------------------------------------------------------------------------------------


class SeedLinear(nn.Module):
    """``S`` independent linear layers applied to ``x [S, B, in]``; seed ``i`` is initialised from ``seed + i``
    like ``nn.Linear`` (uniform in +-1/sqrt(in))."""

    def __init__(self, seeds: int, fan_in: int, fan_out: int, seed: int = 0):
        super().__init__()
        bound = 1.0 / math.sqrt(fan_in)
        w, b = [], []
        for i in range(seeds):
            g = torch.Generator().manual_seed(seed * 7919 + i)
            w.append((torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound)
            b.append((torch.rand(1, fan_out, generator=g) * 2 - 1) * bound)
        self.weight = nn.Parameter(torch.stack(w))
        self.bias = nn.Parameter(torch.stack(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class SeedBatchNorm(nn.Module):
    """Batch normalisation over dim 1 of ``[S, B, F]`` with batch statistics only (BYOL's heads).

    ``ghost = (views, groups)`` splits the batch, laid out view-major as ``[views, groups * n]`` rows, into
    ``groups`` ghost batches of ``n`` samples (all their views together), each normalised with its own
    statistics (Hoffer et al. 2017). With ``n`` the base batch, a step at ``kappa`` times the batch then has the
    same per-sample loss as the ``kappa`` base steps it replaces, as the scaling rules assume (Goyal et al. 2017
    kept BatchNorm's batch at 32 per worker for the same reason). ``None``: the whole batch."""

    def __init__(self, seeds: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(seeds, 1, features))
        self.bias = nn.Parameter(torch.zeros(seeds, 1, features))
        self.eps = eps
        self.ghost: tuple[int, int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ghost is None or self.ghost[1] == 1:
            var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
            return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
        views, groups = self.ghost
        s, b, f = x.shape
        g = x.view(s, views, groups, b // (views * groups), f)
        var, mean = torch.var_mean(g, dim=(1, 3), keepdim=True, unbiased=False)
        return ((g - mean) * torch.rsqrt(var + self.eps)).view(s, b, f) * self.weight + self.bias


def set_ghost(module: nn.Module, ghost: tuple[int, int] | None) -> None:
    """Set the ghost batches of every :class:`SeedBatchNorm` in ``module`` (see there)."""
    for m in module.modules():
        if isinstance(m, SeedBatchNorm):
            m.ghost = ghost


def seed_mlp(seeds: int, sizes: tuple[int, ...], seed: int, *, batchnorm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(SeedLinear(seeds, a, b, seed=seed * 31 + i))
        if i < len(sizes) - 2:
            if batchnorm:
                layers.append(SeedBatchNorm(seeds, b))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# -- data -------------------------------------------------------------------------------------------------------


def stream_indices(seed: int, n: int, start: int, count: int, seeds: int) -> torch.Tensor:
    """Samples ``start .. start+count`` of each seed's infinite stream of epoch permutations: ``[S, count]``."""
    out = []
    for s in range(seeds):
        first, last = start // n, (start + count - 1) // n
        perms = torch.cat(
            [torch.randperm(n, generator=step_generator(seed, s, e)) for e in range(first, last + 1)]
        )
        off = start - first * n
        out.append(perms[off : off + count])
    return torch.stack(out)


def augment(
    x: torch.Tensor, gen: torch.Generator, *, shift: int = 1, noise: float = 0.1, erase: float = 0.5
) -> torch.Tensor:
    """A view of square grey images ``[..., side * side]`` (8x8 digits, or digits on a larger canvas): random
    shift by up to ``shift`` pixels (zero fill), Gaussian noise, and with probability ``erase`` a random 3x3
    patch set to zero. All batched tensor ops."""
    shape = x.shape
    side = math.isqrt(shape[-1])
    img = x.reshape(-1, 1, side, side)
    n = img.shape[0]
    pad = F.pad(img, (shift, shift, shift, shift))
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(side))[:, :, None].expand(n, side, side)
    cols = (dx[:, None] + torch.arange(side))[:, None, :].expand(n, side, side)
    width = side + 2 * shift
    flat = pad.reshape(n, -1)
    dev = x.device
    img = flat.gather(1, (rows * width + cols).reshape(n, -1).to(dev)).reshape(n, side * side)
    img = img + noise * torch.randn(img.shape, generator=gen).to(dev)
    ey = torch.randint(0, side - 2, (n,), generator=gen)
    ex = torch.randint(0, side - 2, (n,), generator=gen)
    r = torch.arange(side)
    inside = (
        (r[None, :, None] >= ey[:, None, None])
        & (r[None, :, None] < ey[:, None, None] + 3)
        & (r[None, None, :] >= ex[:, None, None])
        & (r[None, None, :] < ex[:, None, None] + 3)
    )
    apply = torch.rand(n, generator=gen) < erase
    img = img.masked_fill((inside & apply[:, None, None]).reshape(n, side * side).to(dev), 0.0)
    return img.reshape(shape)


def on_canvas(data: dict, side: int, seed: int) -> dict:
    """Digits placed at a random offset (fixed per image, drawn from ``seed``) on a ``side x side`` zero canvas:
    ``[N, side * side]``. A harder version of digits: kNN on raw pixels falls from 95.5 % (8x8) to about 64 %
    at ``side = 12``, so an encoder must learn the shift invariance its augmentations teach."""
    if side < 8:
        raise ValueError(f"canvas side must be >= 8, got {side}")
    out = dict(data)
    for j, part in enumerate(("x_train", "x_test")):
        x = data[part].reshape(-1, 8, 8)
        n = x.shape[0]
        g = torch.Generator().manual_seed(seed * 1009 + 101 + j)
        oy = torch.randint(0, side - 7, (n,), generator=g)
        ox = torch.randint(0, side - 7, (n,), generator=g)
        rows = (oy[:, None] + torch.arange(8))[:, :, None].expand(n, 8, 8)
        cols = (ox[:, None] + torch.arange(8))[:, None, :].expand(n, 8, 8)
        canvas = torch.zeros(n, side * side, dtype=x.dtype)
        canvas.scatter_(1, (rows * side + cols).reshape(n, 64), x.reshape(n, 64))
        out[part] = canvas
    return out


# -- tasks --------------------------------------------------------------------------------------------------------


class Supervised(nn.Module):
    """An MLP classifier per seed; the EMA averages the whole model (Polyak-Ruppert)."""

    def __init__(self, seeds: int, hidden: int, seed: int):
        super().__init__()
        self.net = seed_mlp(seeds, (64, hidden, 10), seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def ema_source(self) -> nn.Module:
        return self


class BYOL(nn.Module):
    """BYOL (Grill et al. 2020) per seed: online = encoder -> projector -> predictor; the target network is the
    EMA of (encoder, projector). ``forward`` returns the online prediction (what DDP must wrap)."""

    def __init__(
        self, seeds: int, seed: int, hidden: int = 256, feat: int = 128, proj: int = 64, inputs: int = 64
    ):
        super().__init__()
        self.backbone = nn.Sequential(
            seed_mlp(seeds, (inputs, hidden, feat), seed),
            seed_mlp(seeds, (feat, hidden, proj), seed + 1, batchnorm=True),
        )
        self.predictor = seed_mlp(seeds, (proj, hidden, proj), seed + 2, batchnorm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.backbone(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone[0](x)

    def ema_source(self) -> nn.Module:
        return self.backbone


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) per sample, averaged over the batch and summed over seeds."""
    return byol_loss_per_seed(p, z).sum()


def byol_loss_per_seed(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) per sample, averaged over the batch: one value per seed ``[S]``."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean(1)


@dataclass
class ArmSpec:
    """One training run: a task at a batch schedule, with an EMA rule."""

    task: str  # "supervised" | "byol"
    schedule: BatchSchedule
    base: Hparams  # at the base batch; ema_momentum is rho at the base batch
    ema_rule: str  # "exp" | "none" | "linear"
    total_samples: int
    eval_every: int  # samples between evaluations (a multiple of every batch size)
    seeds: int
    seed: int
    hidden: int = 256
    cosine_ema: bool = False  # BYOL: rho(s) cosine from ema_momentum to 1 over total_samples
    ghost_bn: bool = False  # BYOL on digits: BatchNorm statistics over ghost batches of the base batch
    curve_knn: bool = False  # BYOL: kNN accuracy of the online encoder per seed at every evaluation
    lars_rule: str = "linear"
    warmup_samples: int = 0  # linear learning-rate warm-up, in samples seen (Goyal et al.)
    inputs: int = 64  # BYOL on digits: pixels per image (64, or side * side on a canvas)
    shift: int = 1  # BYOL on digits: the augmentation's largest shift in pixels


def _build(spec: ArmSpec) -> nn.Module:
    if spec.task == "supervised":
        return Supervised(spec.seeds, spec.hidden, spec.seed)
    if spec.task == "byol":
        return BYOL(spec.seeds, spec.seed, spec.hidden, inputs=spec.inputs)
    raise ValueError(f"unknown task {spec.task!r}")


def _views(spec: ArmSpec, full: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return augment(full, gen, shift=spec.shift)


def train_arm(
    run, key: str, spec: ArmSpec, data: dict, env: DistEnv, on_eval: Callable[[dict], None] | None = None
) -> dict:
    """Train one arm (resuming from its checkpoint if the run was interrupted) and return its results."""
    x_train = data["x_train"].to(env.device)
    n = x_train.shape[0]
    model = _build(spec).to(env.device)
    momentum = (
        Cosine(spec.base.ema_momentum, 1.0, spec.total_samples) if spec.cosine_ema else spec.base.ema_momentum
    )
    # BYOL's target on digits normalises in eval mode: its BatchNorm layers use batch statistics anyway
    # (SeedBatchNorm); the image preset's target runs in train mode (ema_scale.stream).
    ema = ScaledEMA(
        model.ema_source(), momentum, base_batch_size=spec.schedule.base_batch_size, rule=spec.ema_rule
    )
    kappa = spec.schedule.kappa_at(0)
    hp = scale_hparams(spec.base, kappa, ema_rule=spec.ema_rule, lars_rule=spec.lars_rule)
    opt = build_optimizer(model.parameters(), hp)
    ckpt = run.checkpoint(key)
    samples, curve = 0, []
    if ckpt.exists():
        _, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        ema.load_state_dict(weights["ema"])
        opt.load_state_dict(state["optimizer"])
        samples, curve, losses = int(state["samples"]), list(state["curve"]), list(state["losses"])
        seed_losses = list(state.get("seed_losses", []))
        kappa = spec.schedule.kappa_at(samples)
        hp = scale_hparams(spec.base, kappa, ema_rule=spec.ema_rule, lars_rule=spec.lars_rule)
        apply_hparams(opt, hp)
    else:
        losses, seed_losses = [], []
    ddp = wrap_ddp(model, env)

    def save(_step: int) -> None:
        ckpt.save(
            _step,
            {"model": model, "ema": ema},
            {
                "optimizer": opt.state_dict(),
                "samples": samples,
                "curve": curve,
                "losses": losses,
                "seed_losses": seed_losses,
            },
        )

    def evaluate() -> dict:
        with torch.no_grad():
            if spec.task == "supervised":
                xt, yt = data["x_test"].to(env.device), data["y_test"].to(env.device)
                xs = xt.expand(spec.seeds, *xt.shape)
                ema_acc = (ema(xs).argmax(-1) == yt).float().mean(1)
                online_acc = (model(xs).argmax(-1) == yt).float().mean(1)
                return {
                    "ema_acc": ema_acc.mean().item(),
                    "online_acc": online_acc.mean().item(),
                    "ema_acc_seeds": ema_acc.tolist(),
                }
            if spec.curve_knn:
                ftr = _features(model, data["x_train"], spec, env)
                fte = _features(model, data["x_test"], spec, env)
                knn = [_knn(ftr[s], data["y_train"], fte[s], data["y_test"]) for s in range(spec.seeds)]
                loo = knn_loo_accuracy(torch.cat([ftr, fte], 1), torch.cat([data["y_train"], data["y_test"]]))
                return {
                    "knn_acc": sum(knn) / len(knn),
                    "knn_acc_seeds": knn,
                    "knn_all": sum(loo) / len(loo),
                    "knn_all_seeds": loo,
                }
            return {}

    # steps are counted in whole batches; the schedule may change the batch, so count by samples
    steps_total = _count_steps(spec.schedule, spec.total_samples)
    step0 = _count_steps(spec.schedule, samples)
    for step in run.steps(steps_total, start=step0, desc=key, save=save):
        bs = spec.schedule.batch_at(samples)
        new_kappa = bs / spec.schedule.base_batch_size
        if new_kappa != kappa:
            kappa = new_kappa
            hp = scale_hparams(spec.base, kappa, ema_rule=spec.ema_rule, lars_rule=spec.lars_rule)
            apply_hparams(opt, hp)
        if spec.warmup_samples and samples < spec.warmup_samples + bs:
            apply_hparams(opt, hp, lr_factor=min(1.0, (samples + bs) / spec.warmup_samples))
        idx = stream_indices(spec.seed, n, samples, bs, spec.seeds)  # [S, bs], the global batch
        per_rank = bs // env.world_size
        mine = slice(env.rank * per_rank, (env.rank + 1) * per_rank)  # this rank's part of it
        if spec.task == "supervised":
            idx = idx[:, mine].to(env.device)
            logits = ddp(x_train[idx])
            loss = F.cross_entropy(
                logits.reshape(-1, 10), data["y_train"].to(env.device)[idx].reshape(-1), reduction="none"
            )
            loss = loss.view(spec.seeds, -1).mean(1).sum()
        else:
            # views of the whole global batch from a per-step generator, then this rank's slice: the same
            # augmentations whatever the number of ranks
            gen = step_generator(spec.seed, 17, samples)
            full = x_train[idx.to(env.device)]
            if spec.ghost_bn:
                base_rank = spec.schedule.base_batch_size // env.world_size
                groups = per_rank // base_rank if base_rank and per_rank % base_rank == 0 else 1
                set_ghost(model, (2, groups))
                set_ghost(ema.module, (2, groups))
            views = torch.cat([_views(spec, full, gen)[:, mine], _views(spec, full, gen)[:, mine]], 1)
            with autocast(env.device):
                with torch.no_grad():
                    z1, z2 = ema(views).float().chunk(2, dim=1)
                p1, p2 = ddp(views).float().chunk(2, dim=1)
            per_seed = byol_loss_per_seed(p1, z2) + byol_loss_per_seed(p2, z1)
            loss = per_seed.sum()
            seed_losses.append(all_reduce_mean(per_seed.detach()).tolist())
        value = all_reduce_mean(loss.detach()).item()  # the global batch's loss, the same on every rank
        run.check_finite(value, where=f"{key} step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(unwrap(ddp).ema_source(), batch_size=bs)
        samples += bs
        losses.append(value)
        if samples % spec.eval_every == 0 or samples >= spec.total_samples:
            point = {
                "arm": key,
                "samples": samples,
                "kappa": kappa,
                "global_batch": bs,
                "per_rank_batch": per_rank,
                "loss": sum(losses) / len(losses) / spec.seeds,
                **({"loss_seeds": [sum(v) / len(v) for v in zip(*seed_losses)]} if seed_losses else {}),
                "ema_momentum": ema.momentum_at(bs),
                "lr": opt.param_groups[0]["lr"],
                **evaluate(),
            }
            losses, seed_losses = [], []
            curve.append(point)
            run.log(**point)
            if on_eval:
                on_eval(point)
    save(steps_total)  # the final weights (model and EMA) stay in checkpoints/KEY/
    result = {"curve": curve, "final": curve[-1] if curve else {}}
    if spec.task != "supervised":
        result["final"] = {**result["final"], **probe(model, data, env, spec)}
    return result


def _knn(*args) -> float:
    """``paperkit.evaluation.knn_accuracy`` without its side effect on torch: it calls
    ``faiss.omp_set_num_threads(1)``, which sets the OpenMP pool torch shares, so a run at ``--threads 2`` would
    continue on one thread after its first evaluation. Restores torch's thread count."""
    n = torch.get_num_threads()
    try:
        return knn_accuracy(*args)
    finally:
        torch.set_num_threads(n)


def knn_loo_accuracy(feats: torch.Tensor, labels: torch.Tensor, k: int = 20) -> list[float]:
    """Leave-one-out kNN accuracy per seed of ``feats [S, N, d]``: every image is classified by the majority
    label of its ``k`` nearest others (cosine similarity). Over all N images (train and test splits together,
    labels used only here) its sampling noise is sqrt(N / N_test) times smaller than the test split's."""
    f = F.normalize(feats.double(), dim=-1)
    sim = f @ f.transpose(1, 2)
    sim.diagonal(dim1=1, dim2=2).fill_(-math.inf)
    nn_idx = sim.topk(k, dim=-1).indices  # [S, N, k]
    votes = F.one_hot(labels[nn_idx], int(labels.max()) + 1).sum(2)  # [S, N, C]
    return (votes.argmax(-1) == labels).double().mean(1).tolist()


def _count_steps(schedule: BatchSchedule, samples: int) -> int:
    steps, s = 0, 0
    while s < samples:
        s += schedule.batch_at(s)
        steps += 1
    return steps


def _features(
    model: nn.Module, x: torch.Tensor, spec: ArmSpec, env: DistEnv, chunk: int = 512
) -> torch.Tensor:
    """Frozen online-encoder features ``[S, N, d]``."""
    out = []
    model.eval()
    with torch.no_grad(), autocast(env.device):
        for i in range(0, x.shape[0], chunk):
            xb = x[i : i + chunk].to(env.device)
            xb = xb.expand(spec.seeds, *xb.shape)
            out.append(model.encode(xb).float().cpu())
    model.train()
    return torch.cat(out, dim=1)


def probe(model: nn.Module, data: dict, env: DistEnv, spec: ArmSpec) -> dict:
    """Linear-probe and kNN accuracy of the online encoder's features, per seed, averaged."""
    model = unwrap(model)
    seeds = spec.seeds
    ftr = _features(model, data["x_train"], spec, env)
    fte = _features(model, data["x_test"], spec, env)
    lin = [linear_probe(ftr[s], data["y_train"], fte[s], data["y_test"]) for s in range(seeds)]
    knn = [_knn(ftr[s], data["y_train"], fte[s], data["y_test"]) for s in range(seeds)]
    return {"probe_acc": sum(lin) / seeds, "knn_acc": sum(knn) / seeds, "probe_acc_seeds": lin}
