"""``uv run --package attn2mamba train``: Transformer -> Hedgehog linear attention -> Mamba, with claims.

This file is the recipe, top to bottom; each stage's mechanics live in the module named for it:

0. :mod:`.config` (``Config``, ``PRESETS``) and :mod:`.context` (the splits, evaluation windows, batches; the
   step loop every phase shares is :mod:`.loop`). Train, validation and test splits are disjoint
   (:func:`attn2mamba.data.split_documents`); curves and hyperparameter choices use validation, the claims test.
1. ``teacher`` (:func:`attn2mamba.teacher.teacher_phase`): train a tiny GPT-NeoX on the corpus, or load
   ``--teacher DIR`` (a GPT-NeoX/Pythia or Llama folder).
2. ``stage1@0`` (:mod:`.stage1`): the stage-1 model with untrained (identity) feature maps, the control's start.
3. Per student seed ``s`` (``--seeds``) and stage-1 split ``F`` (``--stage1-frac``; the claims use the first):
   - ``stage1@F-sS`` (:mod:`.stage1`): Hedgehog feature maps fitted for ``F * student_tokens`` tokens
     (layer-wise terms and/or the end-to-end KL, ``--stage1-*``);
   - ``stage2@F-sS`` (:mod:`.stage2`, :mod:`.convert`): the stage-1 model mapped into a Mamba (step 0 equals
     stage 1), then trained on everything with cross-entropy + ``kl_weight`` KL to the teacher for the remaining
     ``(1 - F) * student_tokens``;
   - ``control-sS``: the same stage 2, on the same batches, from the *untrained* stage-1 maps (a zero-step
     stage 1): what the teacher's copied weights give without stage 1;
   - ``naive-sS``: the same Mamba from random initialisation, same loss, all ``student_tokens`` tokens.
4. The claims (:func:`_claims`, below), the figure and text samples (:mod:`.report`).
"""

from __future__ import annotations

import math

from paperkit import ConfigError, Run, run_trainer

from .config import DESCRIPTION, PRESETS, Config

PACKAGE = "attn2mamba"
__all__ = ["PRESETS", "Config", "body", "main"]


def body(cfg: Config, run: Run) -> dict:
    from paperkit.device import seed_everything
    from paperkit.distributed import shutdown

    from .context import Context
    from .lm import ModelInputError
    from .report import figure, samples
    from .stage1 import fit_stage1
    from .stage2 import from_stage1, load_mamba, naive, naive_builder, stage2
    from .teacher import teacher_phase

    seed_everything(cfg.seed)
    try:
        ctx = Context(cfg, run)
        # 1. the teacher
        teacher, t_res = teacher_phase(ctx)
        res: dict = {
            "data": ctx.corpus.summary(),
            "world_size": ctx.env.world_size,
            "teacher": t_res,
            "arms": {},
            "tokens_per_step": ctx.tokens_per_step,
            "student_steps": ctx.total_steps,
            "seeds": cfg.seeds,
        }
        arms = res["arms"]
        models = {"teacher": teacher}
        # 2. the untrained stage-1 model: deterministic, the same for every seed
        s1_zero, s1_zero_res = fit_stage1(ctx, teacher, 0.0, 0, 0)
        arms["stage1@0"] = [s1_zero_res] * cfg.seeds
        # 3. per seed: stage 1, stage 2 from it, the control (stage 2 from untrained maps), the naive baseline
        for seed in range(cfg.seeds):
            for i, frac in enumerate(cfg.stage1_frac):
                s1, s1_res = fit_stage1(ctx, teacher, frac, i, seed)
                arms.setdefault(f"stage1@{frac:g}", []).append(s1_res)
                n1 = s1_res["steps"]
                key = f"stage2@{frac:g}-s{seed}"
                build = from_stage1(ctx, s1, seed)
                arms.setdefault(f"stage2@{frac:g}", []).append(
                    stage2(ctx, teacher, key, 11 + 2 * i, build, stage1_steps=n1, seed=seed)
                )
                if i == 0 and seed == 0 and run.is_main and cfg.sample_tokens:
                    models["stage1"] = s1
                    models["mamba"] = load_mamba(ctx, build, key)
                if i == 0 and cfg.control:  # the same stage 2 (same batches) from untrained maps
                    control = from_stage1(ctx, s1_zero, seed)
                    arms.setdefault("control", []).append(
                        stage2(
                            ctx,
                            teacher,
                            f"control-s{seed}",
                            11,
                            control,
                            stage1_steps=n1,
                            seed=seed,
                            start=False,
                        )
                    )
            if cfg.naive:
                arms.setdefault("naive", []).append(naive(ctx, teacher, seed))
                if seed == 0 and run.is_main and cfg.sample_tokens:
                    models["naive"] = load_mamba(ctx, naive_builder(ctx, seed), "naive-s0")
        # 4. the claims, the figure, samples
        _claims(cfg, run, res)
        if run.is_main:
            figure(ctx, res)
        res["samples"] = samples(ctx, models)
    except ModelInputError as e:
        raise ConfigError(str(e)) from None
    finally:
        shutdown()
    return res


def _claims(cfg: Config, run: Run, res: dict) -> None:
    """Four claims over seeds, each against a control arm measured in this run, on the test split; and the
    exactness of the stage-2 initialisation. Differences are in test cross-entropy (nats per token,
    ``ln perplexity``), paired by seed."""
    f = f"{cfg.stage1_frac[0]:g}"
    arms = res["arms"]
    teacher = res["teacher"]["ppl"]
    ln = lambda arm: [math.log(a["ppl"]) for a in arms[arm]]  # noqa: E731
    mamba = [a["ppl"] for a in arms[f"stage2@{f}"]]
    table = {"teacher": teacher}
    for k, name in (
        ("stage1@0", "stage1_untrained"),
        (f"stage1@{f}", "stage1"),
        (f"stage2@{f}", "mamba"),
        ("control", "mamba_without_stage1"),
        ("naive", "naive"),
    ):
        if k in arms:
            v = [a["ppl"] for a in arms[k]]
            table[name] = {"mean": sum(v) / len(v), "seeds": v}
    res["perplexity"] = table
    n = len(mamba)
    if "control" in arms:
        run.claim_difference(
            "stage1_adds",
            "stage 1 adds to the final Mamba: test cross-entropy of the two-stage Mamba minus that of the same "
            "recipe from untrained (identity) stage-1 maps, equal stage-2 tokens and batches (nats/byte)",
            method=ln(f"stage2@{f}"),
            control=ln("control"),
            control_name="zero-step stage 1",
            op="<",
            threshold=0.0,
        )
    if "naive" in arms:
        run.claim_difference(
            "beats_naive",
            "two-stage Mamba beats a random-init Mamba at equal total tokens: difference of test cross-entropy "
            "(nats/byte)",
            method=ln(f"stage2@{f}"),
            control=ln("naive"),
            control_name="naive (random-init) Mamba",
            op="<",
            threshold=0.0,
        )
        run.claim_over_seeds(
            "mamba_vs_teacher",
            "perplexity(two-stage Mamba) / perplexity(teacher) <= 1.10 on test (paper: 14.11 / 13.86 = 1.018)",
            values=[m / teacher for m in mamba],
            op="<=",
            threshold=1.10,
            control=[a["ppl"] / teacher for a in arms["naive"]],
            control_name="naive Mamba / teacher",
        )
    run.claim_difference(
        "stage1_improves",
        "stage-1 training improves the stage-1 model itself: its test cross-entropy after stage 1 minus with "
        "the untrained maps (nats/byte)",
        method=ln(f"stage1@{f}"),
        control=ln("stage1@0")[:n],
        control_name="untrained maps (step 0)",
        op="<",
        threshold=0.0,
    )
    run.claim(
        "step0_equals_stage1",
        "at step 0 of stage 2 the Mamba model's test perplexity equals stage 1's within 0.5% (max |ratio - 1| "
        "over seeds; exact by construction)",
        max(abs(a["start_ppl"] / b["ppl"] - 1) for a, b in zip(arms[f"stage2@{f}"], arms[f"stage1@{f}"])),
        "<=",
        0.005,
    )


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package=PACKAGE, config_cls=Config, presets=PRESETS, body=body, argv=argv, description=DESCRIPTION
    )
