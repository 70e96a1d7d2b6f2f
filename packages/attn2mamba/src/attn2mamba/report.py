"""What the trainer shows besides the claims: the perplexity figure and text samples from every model."""

from __future__ import annotations

from .context import Context


def figure(ctx: Context, res: dict) -> None:
    from paperkit.plotting import figure as make_figure

    fracs = ctx.cfg.stage1_frac
    arms = res["arms"]
    fig, axes = make_figure(2, 1, width=5.2, height=3.6)
    ax = axes[0][0]
    ax.axhline(res["teacher"]["curve_ppl"], color="black", ls="--", lw=1, label="teacher")
    colors = ["tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan"]
    for i, f in enumerate(fracs):
        c = colors[i % len(colors)]
        s1, s2 = arms[f"stage1@{f:g}"][0], arms[f"stage2@{f:g}"][0]
        ax.plot(*_xy(s1["curve"]), color=c, ls=":", marker=".", label=f"stage 1 (Hedgehog), split {f:g}")
        ax.plot(*_xy(s2["curve"]), color=c, marker="o", ms=3, label=f"two-stage Mamba, split {f:g}")
    if "control" in arms:
        ax.plot(
            *_xy(arms["control"][0]["curve"]),
            color="tab:orange",
            marker="^",
            ms=3,
            label="control: no stage 1",
        )
    if "naive" in arms:
        ax.plot(
            *_xy(arms["naive"][0]["curve"]),
            color="tab:red",
            marker="s",
            ms=3,
            label="naive Mamba (random init)",
        )
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k" if v else "0")
    ax.set_xlabel("distillation tokens")
    ax.set_ylabel(f"validation perplexity ({ctx.cfg.curve_windows} windows)")
    ax.set_title("attn2mamba: perplexity against tokens (seed 0)")
    ax.legend(fontsize=7)
    ax2 = axes[0][1]
    f = f"{fracs[0]:g}"
    names = [
        ("stage1@0", "stage 1, untrained"),
        (f"stage1@{f}", "stage 1, trained"),
        ("control", "Mamba, no stage 1"),
        (f"stage2@{f}", "two-stage Mamba"),
        ("naive", "naive Mamba"),
    ]
    names = [(k, n) for k, n in names if k in arms]
    for j, (k, _) in enumerate(names):
        vals = [a["ppl"] for a in arms[k]]
        ax2.scatter([j] * len(vals), vals, s=12, color="tab:blue")
    ax2.axhline(res["teacher"]["ppl"], color="black", ls="--", lw=1, label="teacher")
    ax2.set_xticks(range(len(names)), [n for _, n in names], rotation=20, fontsize=7)
    ax2.set_yscale("log")
    ax2.set_ylabel("test perplexity (every seed)")
    ax2.set_title("arms over seeds")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    ctx.run.save_figure(fig, "perplexity")


def _xy(curve: list[dict]) -> tuple[list, list]:
    return [p["tokens"] for p in curve], [p["ppl"] for p in curve]


def samples(ctx: Context, models: dict) -> dict:
    import torch

    from .data import ByteTokenizer
    from .generate import generate

    cfg = ctx.cfg
    if not cfg.sample_tokens or not ctx.run.is_main:
        return {}
    n_prompt = min(32, cfg.seq_len // 2)
    val = ctx.corpus.val
    # start after the first blank line past the first 200 tokens: prose rather than a heading's underline
    start = 0
    if isinstance(ctx.tokenizer, ByteTokenizer) and len(val) > 400:
        blank = (val[200 : -n_prompt - 1] == 10) & (val[201:-n_prompt] == 10)
        hits = blank.nonzero()
        start = 202 + int(hits[0]) if len(hits) else 0
    prompt = val[start : start + n_prompt][None]
    out = {"prompt": ctx.tokenizer.decode(prompt[0].tolist())}
    new = min(cfg.sample_tokens, min(m.config.max_seq_len for m in models.values()) - n_prompt)
    for name, m in models.items():
        g = torch.Generator().manual_seed(cfg.seed)
        ids = generate(m, prompt, new, temperature=0.7, top_k=20, generator=g)
        out[name] = ctx.tokenizer.decode(ids[0, n_prompt:].tolist())
    return out
