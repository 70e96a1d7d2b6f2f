"""``train`` for polyview: parse the config without importing torch, then run :func:`polyview.train.body`."""

from __future__ import annotations

from paperkit.launch import run_trainer

from .config import DESCRIPTION, PRESETS, Config


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="polyview",
        config_cls=Config,
        presets=PRESETS,
        body="polyview.train:body",
        argv=argv,
        description=DESCRIPTION,
    )
