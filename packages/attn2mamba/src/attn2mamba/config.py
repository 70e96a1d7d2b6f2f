"""The trainer's configuration (:class:`Config`), its presets and its description: torch-free, so that
``train --help`` imports no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from paperkit.config import BaseConfig, ConfigError, knob

DESCRIPTION = (
    "Attention to Mamba (Moudgil et al., arXiv 2604.14191): distil a GPT-NeoX or Llama teacher into Hedgehog "
    "linear attention (stage 1), map it into Mamba-2 and distil again (stage 2), against a naive random-init "
    "Mamba at equal tokens."
)


@dataclass
class Config(BaseConfig):
    # data
    data: str = knob(
        "", "a text file, a folder of text files, or a .npy of token ids; empty: pydoc_data.topics"
    )
    tokenizer: str = knob(
        "bytes",
        "bytes (vocabulary 256) or teacher (the --teacher folder's tokenizer.json)",
        choices=("bytes", "teacher"),
    )
    val_fraction: float = knob(
        0.1,
        "validation fraction of the corpus (whole documents; curves, choices)",
        low=0,
        low_open=True,
        high=0.4,
    )
    test_fraction: float = knob(
        0.1, "test fraction of the corpus (whole documents; the claims)", low=0, low_open=True, high=0.4
    )
    seq_len: int = knob(128, "training and evaluation sequence length (tokens)", low=2)
    batch_size: int = knob(32, "global batch in sequences (split over torchrun ranks)", low=1)
    micro_batch: int = knob(
        0, "sequences per forward pass on each rank (gradient accumulation); 0: all", low=0
    )
    # teacher
    teacher: str = knob(
        "",
        "GPT-NeoX/Pythia or Llama folder (config.json + *.safetensors; model_type picks the loader); "
        "empty: train a tiny GPT-NeoX here",
    )
    hidden_size: int = knob(64, "tiny teacher: width", low=8)
    num_layers: int = knob(4, "tiny teacher: layers", low=1)
    num_heads: int = knob(4, "tiny teacher: attention heads", low=1)
    intermediate_size: int = knob(256, "tiny teacher: MLP width", low=1)
    rotary_pct: float = knob(
        0.25, "tiny teacher: fraction of each head with rotary embeddings (Pythia's)", low=0, high=1
    )
    teacher_steps: int = knob(500, "tiny teacher: training steps", low=1)
    teacher_lr: float = knob(3e-3, "tiny teacher: AdamW peak learning rate", low=0, low_open=True)
    teacher_weight_decay: float = knob(0.1, "tiny teacher: AdamW weight decay on matrices", low=0)
    # stage 1
    feature_dim: int = knob(16, "Hedgehog feature dim f per map (2f features; the Mamba state size)", low=1)
    normalize: str = knob(
        "ratio",
        "linear-attention normalisation: rms (per-head RMSNorm) or ratio (softmax-style denominator)",
        choices=("rms", "ratio"),
    )
    feature_init: str = knob("identity", "Hedgehog map init", choices=("identity", "kaiming"))
    stage1_cosine: float = knob(
        0.0, "stage-1 loss weight: 1 - cosine(student, teacher) attention outputs (layer-wise)", low=0
    )
    stage1_mse: float = knob(
        0.0, "stage-1 loss weight: relative MSE of attention outputs (layer-wise)", low=0
    )
    stage1_xent: float = knob(
        0.0, "stage-1 loss weight: cross-entropy of attention weights (Hedgehog's)", low=0
    )
    stage1_kl: float = knob(
        1.0, "stage-1 loss weight: end-to-end KL(teacher || stage-1 model) of the next-token logits", low=0
    )
    stage1_rotary: bool = knob(
        True,
        "feature maps on the teacher's rotary-embedded q, k (the Mamba then rotates B and C); "
        "--no-stage1-rotary: on the pre-rotary q, k",
    )
    stage1_lr: float = knob(
        1e-2, "stage-1 Adam learning rate (feature maps and norm gains)", low=0, low_open=True
    )
    # budget and stage 2
    student_tokens: int = knob(
        262_144, "distillation tokens: stage 1 + stage 2, and the naive baseline's whole budget", low=1
    )
    stage1_frac: tuple[float, ...] = knob(
        (0.125,),
        "fraction of student_tokens for stage 1; several values sweep the split (claims: the first)",
        low=0,
        high=1,
    )
    stage2_lr: float = knob(3e-3, "stage-2 AdamW peak learning rate", low=0, low_open=True)
    release_lr_mult: float = knob(
        10.0,
        "stage 2: learning-rate factor for the released mixer parameters (decay, dt, conv, SiLU/gate mixes, D)",
        low=0,
        low_open=True,
    )
    seeds: int = knob(3, "student seeds (stage 1, stage 2, control, naive per seed; one teacher)", low=1)
    control: bool = knob(
        True, "also train the control: stage 2 from untrained stage-1 maps, same batches and stage-2 tokens"
    )
    naive: bool = knob(True, "also train the naive baseline (random-init Mamba, same loss and tokens)")
    naive_lr: float = knob(3e-3, "naive baseline: AdamW peak learning rate", low=0, low_open=True)
    kl_weight: float = knob(
        1.0, "stage 2 and naive: weight of KL(teacher || student); 0 = cross-entropy only", low=0
    )
    kl_temperature: float = knob(1.0, "temperature of the KL term", low=0, low_open=True)
    warmup_frac: float = knob(
        0.05, "linear warm-up fraction of each phase (then cosine to 10%)", low=0, high=1
    )
    grad_clip: float = knob(1.0, "gradient-norm clip (0: off)", low=0)
    conv_kernel: int = knob(4, "Mamba conv1d kernel", low=1)
    chunk_size: int = knob(64, "chunk length of the linear-attention and SSD scans", low=1)
    use_kernels: str = knob(
        "auto", "auto: mamba-ssm/causal-conv1d on CUDA if installed; torch: never", choices=("auto", "torch")
    )
    parallel: str = knob(
        "ddp",
        "under torchrun: ddp, or fsdp (fully_shard) for stage 2 and the baseline",
        choices=("ddp", "fsdp"),
    )
    # evaluation
    eval_windows: int = knob(256, "test (and validation) windows for the final perplexities", low=1)
    curve_windows: int = knob(48, "validation windows per point of the perplexity curves", low=1)
    curve_points: int = knob(4, "evaluations per phase for the curves", low=1)
    sample_tokens: int = knob(120, "tokens sampled from every model at the end (0: none)", low=0)

    def check(self) -> None:
        if self.teacher:
            p = Path(self.teacher)
            if not p.is_dir():
                raise ConfigError(f"--teacher {self.teacher}: teacher checkpoint folder does not exist")
            if not (p / "config.json").is_file():
                raise ConfigError(
                    f"--teacher {self.teacher}: no config.json there (expected a GPT-NeoX or Llama folder)"
                )
        if self.data and not Path(self.data).exists():
            raise ConfigError(f"--data {self.data} does not exist")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"--hidden-size {self.hidden_size} is not divisible by --num-heads {self.num_heads}"
            )
        if not self.stage1_frac:
            raise ConfigError("--stage1-frac needs at least one value")
        if self.stage1_cosine + self.stage1_mse + self.stage1_xent + self.stage1_kl <= 0:
            raise ConfigError(
                "stage 1 needs a loss: set --stage1-cosine, --stage1-mse, --stage1-xent or --stage1-kl above 0"
            )
        if self.micro_batch and self.batch_size % self.micro_batch:
            raise ConfigError(
                f"--batch-size {self.batch_size} is not divisible by --micro-batch {self.micro_batch}"
            )


PRESETS = {
    "smoke": dict(
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        seq_len=48,
        batch_size=8,
        teacher_steps=30,
        feature_dim=8,
        stage1_frac=(0.25,),
        student_tokens=8 * 48 * 24,
        eval_windows=16,
        curve_windows=8,
        curve_points=2,
        sample_tokens=16,
        checkpoint_every=10,
        threads=1,
        seeds=2,
    ),
    # two torch threads (an idle 2-core machine: 1.6-2x one thread); on a CPU shared with other jobs
    # `--threads 1` avoids the stalls of two threads competing for one core
    "default": dict(threads=2),
    "paper": dict(
        tokenizer="teacher",
        seq_len=2048,
        batch_size=256,
        micro_batch=4,
        student_tokens=10_000_000_000,
        stage1_frac=(0.25,),
        seeds=1,
        control=False,
        feature_dim=64,
        stage1_lr=1e-2,
        stage2_lr=2e-4,
        release_lr_mult=10.0,
        naive=False,
        kl_weight=1.0,
        warmup_frac=0.01,
        parallel="fsdp",
        eval_windows=512,
        curve_windows=64,
        curve_points=20,
        sample_tokens=200,
        checkpoint_every=250,
    ),
}
