"""``train`` for affective-music: parse the config without importing torch, then run :func:`affective_music.train.body`."""

from __future__ import annotations

from paperkit.launch import run_trainer

from .config import DESCRIPTION, PRESETS, Config


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package="affective-music",
        config_cls=Config,
        presets=PRESETS,
        body="affective_music.train:body",
        argv=argv,
        description=DESCRIPTION,
    )
