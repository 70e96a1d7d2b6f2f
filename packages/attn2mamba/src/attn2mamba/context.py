"""What every phase of the trainer needs: config, run, distributed environment, tokenizer, the three splits, the
evaluation windows, the batches of each step, and perplexity on test (the claims) and validation (the choices)."""

from __future__ import annotations

from paperkit import ConfigError, Run

from .config import Config


class Context:
    """What every phase needs: config, run, distributed env, data, evaluation windows."""

    def __init__(self, cfg: Config, run: Run):
        import torch
        from paperkit.device import autocast
        from paperkit.distributed import init

        from .data import DataError, check_vocab, eval_windows, load_corpus, make_tokenizer
        from .teacher import CheckpointError

        self.cfg, self.run = cfg, run
        self.env = init(cfg.device)
        if cfg.batch_size % self.env.world_size:
            raise ConfigError(
                f"--batch-size {cfg.batch_size} is not divisible by {self.env.world_size} ranks"
            )
        self.per_rank = cfg.batch_size // self.env.world_size
        self.micro = cfg.micro_batch or self.per_rank
        if self.per_rank % self.micro:
            raise ConfigError(
                f"per-rank batch {self.per_rank} is not divisible by --micro-batch {self.micro}"
            )
        self.autocast = lambda: autocast(self.env.device)
        try:
            self.tokenizer = make_tokenizer(cfg.tokenizer, cfg.teacher or None)
            self.loaded_teacher = None
            if cfg.teacher:
                from .teacher import load_teacher

                self.loaded_teacher = load_teacher(cfg.teacher, device=self.env.device)
                tcfg = self.loaded_teacher.config
                check_vocab(self.tokenizer, tcfg.vocab_size)
                if cfg.seq_len > tcfg.max_seq_len:
                    raise ConfigError(
                        f"--seq-len {cfg.seq_len} is longer than the teacher's limit of {tcfg.max_seq_len}"
                    )
            self.corpus = load_corpus(
                cfg.data,
                self.tokenizer,
                val_fraction=cfg.val_fraction,
                test_fraction=cfg.test_fraction,
                seed=cfg.seed,
                min_tokens=cfg.seq_len + 1,
            )
        except (DataError, CheckpointError) as e:
            raise ConfigError(str(e)) from None
        self.final_windows = eval_windows(self.corpus.test, cfg.seq_len, cfg.eval_windows)  # claims
        self.val_windows = eval_windows(self.corpus.val, cfg.seq_len, cfg.eval_windows)  # choices
        self.curve_windows = eval_windows(self.corpus.val, cfg.seq_len, cfg.curve_windows)
        self.tokens_per_step = cfg.batch_size * cfg.seq_len
        self.total_steps = max(1, round(cfg.student_tokens / self.tokens_per_step))
        self.torch = torch

    def lm_config(self):
        from .lm import LMConfig

        if self.loaded_teacher is not None:
            return self.loaded_teacher.config
        cfg = self.cfg
        return LMConfig(
            vocab_size=self.tokenizer.vocab_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            rotary_pct=cfg.rotary_pct,
            max_seq_len=max(cfg.seq_len, 256),
        )

    def batch(self, phase_id: int, step: int, seed: int = 0):
        """This rank's share of the global batch of step ``step`` of student seed ``seed`` (the same windows
        whatever the world size)."""
        from paperkit.device import step_generator
        from paperkit.distributed import rank_slice

        from .data import sample_batch

        g = step_generator(self.cfg.seed, phase_id, step, *((1000 + seed,) if seed else ()))
        full = sample_batch(self.corpus.train, self.cfg.batch_size, self.cfg.seq_len, g)
        return rank_slice(full, self.env).to(self.env.device)

    def ppl(self, model, windows) -> float:
        from .data import perplexity

        return perplexity(model, windows, batch=self.micro, device=self.env.device, autocast=self.autocast)

    def final(self, model) -> dict:
        """Test perplexity (the claims) and validation perplexity (the choices)."""
        return {"ppl": self.ppl(model, self.final_windows), "val_ppl": self.ppl(model, self.val_windows)}
