"""Dataclass configs and the command line built from them.

A trainer declares one dataclass, every knob a field made with :func:`knob` (default, help, bounds), and a dict
of presets (``smoke``, ``default``, ``paper``) that override fields. The command line is generated from the
dataclass with :mod:`argparse`, so ``--help`` lists every knob with its default. Precedence, lowest first:
field default, preset, ``--config FILE`` (JSON or TOML), flags on the command line.

Every bad input becomes :class:`ConfigError`, which the runner prints as one line and turns into exit status 2.
Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

RUN_OPTIONS = ("preset", "config", "out", "resume", "strict", "trainer")
RECORDS = ("provenance",)  # written into config.json beside the fields; ignored when the file is read back


class ConfigError(ValueError):
    """Bad user input: printed as one line, exit status 2."""


def knob(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: tuple | None = None,
) -> Any:
    """A config field with its help text and the range it must lie in.

    ``low``/``high`` are inclusive bounds (``low_open=True`` makes ``low`` exclusive); for tuples the bound
    applies to every element. ``choices`` restricts strings.
    """
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices}
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple for sequence defaults")
    return field(default=default, metadata=meta)


@dataclass
class BaseConfig:
    """Fields every trainer has. Subclass it and add the trainer's knobs."""

    seed: int = knob(0, "seed for every random number generator")
    device: str = knob("auto", "auto (CUDA when present), cpu or cuda", choices=("auto", "cpu", "cuda"))
    checkpoint_every: int = knob(
        200, "save a checkpoint every this many steps (and on Ctrl-C/SIGTERM)", low=1
    )
    threads: int = knob(
        0,
        "CPU threads for torch and for BLAS under numpy/scikit-learn (0: the libraries' defaults); small models "
        "on a shared machine run fastest with 1",
        low=0,
    )

    def check(self) -> None:
        """Cross-field checks; raise ConfigError. Per-field bounds are checked from the field metadata."""


@dataclass
class RunOptions:
    preset: str
    config: str | None
    out: str | None
    resume: str | None
    strict: bool


# -- type helpers ---------------------------------------------------------------------------------------------


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _convert(name: str, tp: Any, raw: Any, *, typed: bool = False) -> Any:
    """Convert a raw value to the field's type. Command-line values are strings; values from a config file or
    a preset (``typed=True``) must already have the field's JSON/TOML type: ``true`` is not an int, ``5`` is not
    a string. Floats must be finite."""
    base, optional = _unwrap_optional(tp)
    if raw is None or (optional and isinstance(raw, str) and raw.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{_flag(name)} needs a value")
    origin = typing.get_origin(base)
    type_name = getattr(base, "__name__", str(base))
    try:
        if origin is tuple:
            (elem, *rest) = typing.get_args(base)
            if typed and not isinstance(raw, list | tuple):
                raise TypeError(raw)
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(
                _convert(name, elem, x.strip() if isinstance(x, str) else x, typed=typed)
                for x in items
                if x != ""
            )
        if typed and base in (bool, int, float, str):
            ok = {
                bool: isinstance(raw, bool),
                int: isinstance(raw, int) and not isinstance(raw, bool),
                float: isinstance(raw, int | float) and not isinstance(raw, bool),
                str: isinstance(raw, str),
            }[base]
            if not ok:
                raise ConfigError(f"{_flag(name)}: {raw!r} is not a {type_name} (a {type(raw).__name__})")
        if base is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if base is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if base is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ConfigError(f"{_flag(name)} must be a finite number, got {raw!r}")
            return value
        if base is str:
            return str(raw)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        raise ConfigError(f"{_flag(name)}: unsupported field type {base!r}")
    raise ConfigError(f"{_flag(name)}: {raw!r} is not a valid {type_name}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def validate(cfg: BaseConfig) -> None:
    """Check every field against its bounds and choices, then the config's own ``check()``."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        meta = f.metadata
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v is None or isinstance(v, bool):
                continue
            if meta.get("choices") and v not in meta["choices"]:
                raise ConfigError(
                    f"{_flag(f.name)} must be one of {', '.join(map(str, meta['choices']))}, got {v!r}"
                )
            if isinstance(v, int | float):
                low, high = meta.get("low"), meta.get("high")
                if v != v:
                    raise ConfigError(f"{_flag(f.name)} must be a number, got nan")
                if low is not None and (v <= low if meta.get("low_open") else v < low):
                    op = ">" if meta.get("low_open") else ">="
                    raise ConfigError(f"{_flag(f.name)} must be {op} {low}, got {v}")
                if high is not None and v > high:
                    raise ConfigError(f"{_flag(f.name)} must be <= {high}, got {v}")
    cfg.check()


def from_mapping(cls: type, data: dict, *, source: str, typed: bool = True) -> dict:
    """Field overrides from a mapping (a config file, a preset, or the parsed command line with
    ``typed=False``); unknown keys are an error."""
    known = {f.name: f for f in fields(cls)}
    out = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        if name in RUN_OPTIONS or name in RECORDS:  # not config fields (config.json records them alongside)
            continue
        if name not in known:
            raise ConfigError(f"{source}: unknown field {key!r}")
        out[name] = _convert(name, _field_type(cls, known[name]), raw, typed=typed)
    return out


def load_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config: no such file: {path}")
    try:
        text = p.read_text()
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"--config {path} does not parse: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of field names to values")
    return data


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(message)


def build_parser(
    cls: type, presets: dict[str, dict], *, prog: str, description: str = ""
) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--preset",
        choices=sorted(presets),
        help="named settings: smoke (seconds, for tests), default (the CPU reproduction), "
        "paper (the paper's scale, for GPUs) (default: default)",
    )
    run.add_argument("--config", metavar="FILE", help="JSON or TOML file of field values (over the preset)")
    run.add_argument("--out", metavar="DIR", help="run folder (default runs/PACKAGE/TIMESTAMP)")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    run.add_argument("--strict", action="store_true", default=False, help="exit 1 when a claim fails")
    knobs = parser.add_argument_group("knobs (defaults shown are the field defaults; presets override them)")
    for f in fields(cls):
        tp, _ = _unwrap_optional(_field_type(cls, f))
        meta = f.metadata
        extra = ""
        lo, hi = meta.get("low"), meta.get("high")
        if hi is not None:
            extra = f" (range {lo}..{hi})"
        elif lo is not None:
            extra = f" (range {'>' if meta.get('low_open') else '>='} {lo})"
        help_text = (meta.get("help", "") + extra + f" (default: {f.default!r})").replace(
            "%", "%%"
        )  # argparse
        names = [_flag(f.name)]
        if "_" in f.name:
            names.append("--" + f.name)
        if tp is bool:
            knobs.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            is_tuple = typing.get_origin(tp) is tuple
            metavar = "A,B,..." if is_tuple else tp.__name__.upper()
            choices = None if is_tuple else meta.get("choices")
            if is_tuple and meta.get("choices"):
                help_text += f"; each one of: {', '.join(meta['choices'])}"
            knobs.add_argument(
                *names, dest=f.name, metavar=metavar if not choices else None, choices=choices, help=help_text
            )
    return parser


def parse(
    cls: type, presets: dict[str, dict], argv: list[str] | None, *, prog: str, description: str = ""
) -> tuple[Any, RunOptions]:
    """Parse ``argv`` into a validated config and the run options. Raises ConfigError on any bad input."""
    if "default" not in presets:
        raise TypeError("a trainer must define a 'default' preset")
    parser = build_parser(cls, presets, prog=prog, description=description)
    ns = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    explicit_preset = ns.pop("preset", None)
    opts = RunOptions(
        preset=explicit_preset or "default",
        config=ns.pop("config", None),
        out=ns.pop("out", None),
        resume=ns.pop("resume", None),
        strict=ns.pop("strict", False),
    )
    cli = from_mapping(cls, ns, source="command line", typed=False)
    if opts.resume is not None:
        saved = Path(opts.resume) / "config.json"
        if not saved.is_file():
            raise ConfigError(f"--resume {opts.resume}: no run folder there (config.json is missing)")
        if opts.config is not None:
            raise ConfigError("--resume continues a run with its saved config; drop --config")
        changed = sorted(k for k in cli if k != "device")
        if changed:
            raise ConfigError(f"--resume continues a run with its saved config; drop {_flag(changed[0])}")
        data = load_config_file(str(saved))
        opts.preset = data.get("preset", opts.preset)
        values = from_mapping(cls, data, source=str(saved))
        values.update(cli)
    else:
        data = load_config_file(opts.config) if opts.config is not None else {}
        for key in RUN_OPTIONS:
            if key != "preset" and key in data:
                raise ConfigError(
                    f"--config {opts.config}: {key!r} is a run option, not a field; pass --{key} on the command line"
                )
        if (
            "preset" in data
        ):  # a run's own config.json names its preset: it selects it unless --preset differs
            if data["preset"] not in presets:
                raise ConfigError(f"--config {opts.config}: unknown preset {data['preset']!r}")
            if explicit_preset is not None and explicit_preset != data["preset"]:
                raise ConfigError(
                    f"--config {opts.config} is for preset {data['preset']!r} but --preset is {explicit_preset!r}; "
                    "drop one"
                )
            opts.preset = data["preset"]
        values = from_mapping(cls, presets[opts.preset], source=f"preset {opts.preset!r}")
        values.update(from_mapping(cls, data, source=str(opts.config)))
        values.update(cli)
    try:
        cfg = cls(**values)
    except TypeError as e:
        raise ConfigError(str(e)) from None
    validate(cfg)
    return cfg, opts


def to_dict(cfg: Any, preset: str | None = None) -> dict:
    d = dataclasses.asdict(cfg)
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
    if preset is not None:
        d = {"preset": preset, **d}
    return d


__all__ = ["BaseConfig", "ConfigError", "RunOptions", "knob", "parse", "validate", "to_dict"]
