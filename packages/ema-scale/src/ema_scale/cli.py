"""``train`` for ema-scale: parse the config without importing torch, then run :func:`ema_scale.train.body`."""

from __future__ import annotations

from paperkit.launch import run_trainer

from .config import DESCRIPTION, PRESETS, Config


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="ema-scale",
        config_cls=Config,
        presets=PRESETS,
        body="ema_scale.train:body",
        argv=argv,
        description=DESCRIPTION,
    )
