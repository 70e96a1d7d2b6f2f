"""Stage 1 of the recipe: the teacher with Hedgehog linear attention, its feature maps fitted to the teacher
(phase ``stage1@FRAC-sSEED``; ``stage1@0`` is the untrained maps, the control arm's start). The model and its loss
live in :mod:`attn2mamba.hedgehog`."""

from __future__ import annotations

from .config import Config
from .context import Context
from .loop import train_loop


def hedgehog_config(cfg: Config):
    from .hedgehog import HedgehogConfig

    return HedgehogConfig(
        feature_dim=cfg.feature_dim,
        normalize=cfg.normalize,
        feature_init=cfg.feature_init,
        rotary=cfg.stage1_rotary,
        chunk_size=cfg.chunk_size,
    )


def fit_stage1(ctx: Context, teacher, frac: float, idx: int, seed: int):
    """Phase ``stage1@frac-sSEED`` (``stage1@0`` for the untrained maps): fit the feature maps; returns
    ``(stage-1 model, result)``."""
    from .hedgehog import HedgehogLM, Stage1Loss, stage1_loss

    cfg, run = ctx.cfg, ctx.run
    steps = int(round(frac * ctx.total_steps))
    key = f"stage1@{frac:g}-s{seed}" if steps else "stage1@0"

    def build():
        m = HedgehogLM.from_teacher(teacher, hedgehog_config(cfg))
        m.requires_grad_(False)
        for p in m.stage1_parameters():
            p.requires_grad_(True)
        return m

    weights = Stage1Loss(cfg.stage1_cosine, cfg.stage1_mse, cfg.stage1_xent, cfg.stage1_kl)
    trained: dict = {}

    def train() -> dict:
        import torch

        model = build()
        params = model.stage1_parameters()
        opt = torch.optim.Adam(params, lr=cfg.stage1_lr)

        def loss_fn(mb):
            x = mb[:, :-1]
            records, t_logits = teacher.attention_io(x, weights=cfg.stage1_xent > 0)
            return stage1_loss(model, records, weights, ids=x, teacher_logits=t_logits)[0]

        if steps == 0:
            ctx.run.checkpoint(key).save(
                0, {"model": {n: p for n, p in model.named_parameters() if p.requires_grad}}
            )
            curve = [{"phase": key, "step": 0, "tokens": 0, "ppl": ctx.ppl(model, ctx.curve_windows)}]
        else:
            curve = train_loop(
                ctx,
                key,
                10 + 2 * idx,
                model=model,
                opt=opt,
                steps=steps,
                lr=cfg.stage1_lr,
                loss_fn=loss_fn,
                evaluate=lambda: ctx.ppl(model, ctx.curve_windows),
                token_offset=0,
                trainable=params,
                manual_sync=True,
                seed=seed,
            )
        trained["model"] = model
        return {"steps": steps, "tokens": steps * ctx.tokens_per_step, "curve": curve, **ctx.final(model)}

    res = run.phase(key, train)
    model = trained.get("model")
    if model is None:
        model = build()
        _, w, _ = run.checkpoint(key).load(restore_rng=False)
        model.load_state_dict(w["model"], strict=False)
    return model.eval(), res
