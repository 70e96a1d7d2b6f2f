"""``train`` for attn2mamba: parse the config without importing torch, then run :func:`attn2mamba.train.body`."""

from __future__ import annotations

from paperkit.launch import run_trainer

from .config import DESCRIPTION, PRESETS, Config


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="attn2mamba",
        config_cls=Config,
        presets=PRESETS,
        body="attn2mamba.train:body",
        argv=argv,
        description=DESCRIPTION,
    )
