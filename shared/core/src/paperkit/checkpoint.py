"""Atomic checkpoints: weights in safetensors, optimizer/RNG/loop state alongside.

A checkpoint is a folder ``checkpoints/KEY/step-N`` holding ``weights.safetensors`` (every module's state dict,
prefixed by the module's name) and ``state.pt`` (optimizer state, RNG states, counters; loaded with
``weights_only=True``). It is written under a temporary name, renamed to a name never used before, recorded in
``checkpoints/progress.json``, and only then is the previous one deleted: a crash at any point leaves a complete
checkpoint that ``progress.json`` names. Checkpoints are verified when loaded, so a corrupt checkpoint blocks only
the phase that needs it.
"""

from __future__ import annotations

import os
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .config import ConfigError


class CorruptCheckpoint(ConfigError):
    """A checkpoint that cannot be read."""


def _fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (a rename is durable only once its folder is synced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _slot(key: str) -> str:
    return key.replace("/", "--").replace(" ", "_")


def rng_state() -> dict:
    """Every RNG's state, in a form ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _flatten(modules: dict[str, Any]) -> dict[str, torch.Tensor]:
    flat = {}
    for name, m in modules.items():
        sd = m.state_dict() if hasattr(m, "state_dict") else m
        for k, v in sd.items():
            flat[f"{name}.{k}"] = v.detach().to("cpu").contiguous().clone()
    return flat


def save_weights(path: Path, modules: dict[str, Any]) -> None:
    """Write modules' state dicts to one safetensors file, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(_flatten(modules), str(tmp))
    tmp.replace(path)


def load_weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Read a safetensors file written by :func:`save_weights` back into ``{module: state_dict}``."""
    try:
        flat = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types
        raise CorruptCheckpoint(f"corrupt checkpoint {path}: {str(e).splitlines()[0]}") from None
    out: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in flat.items():
        name, _, rest = k.partition(".")
        out.setdefault(name, {})[rest] = v
    return out


def verify(folder: Path, key: str) -> None:
    """Cheap integrity check of a checkpoint folder (headers and CRCs, no unpickling); the error names the file."""
    weights, state = folder / "weights.safetensors", folder / "state.pt"
    for path in (weights, state):
        try:
            if path is weights:
                with safe_open(str(path), framework="pt") as f:
                    list(f.keys())
            else:
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip()
                if bad is not None:
                    raise ValueError(f"bad CRC in {bad}")
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CorruptCheckpoint(f"corrupt checkpoint for {key!r}: {path}: {msg}") from None


class Checkpoint:
    """One checkpoint slot of a run (see :meth:`paperkit.run.Run.checkpoint`)."""

    def __init__(self, run: Any, key: str):
        self.run = run
        self.key = key
        self.root = run.out / "checkpoints"

    def exists(self) -> bool:
        return self.key in self.run._progress.get("checkpoints", {})

    @property
    def folder(self) -> Path | None:
        sub = self.run._progress.get("checkpoints", {}).get(self.key)
        return None if sub is None else self.root / sub

    def save(self, step: int, modules: dict[str, Any], state: dict | None = None) -> None:
        """Save modules (or plain state dicts) and loop state after ``step`` steps. Rank 0 writes; under torchrun
        every rank must call this (it ends with a barrier), and every rank then knows the new checkpoint, so a
        later :meth:`load` in the same run works on all of them.

        Order, always: write the new folder under a temporary name, rename it to a name no earlier checkpoint
        has (a save counter, so saving the same step twice never touches the folder ``progress.json`` points
        to), switch the pointer in ``progress.json``, and only then delete the previous folder. A kill at any
        point leaves a complete checkpoint that ``progress.json`` names."""
        slot = self.root / _slot(self.key)
        saves = (
            int(self.run._progress.get("saves", 0)) + 1
        )  # the same on every rank: progress is shared state
        final = slot / f"step-{step:09d}-{saves}"
        if self.run.is_main:
            tmp = slot / f".step-{step:09d}-{saves}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            save_file(_flatten(modules), str(tmp / "weights.safetensors"))
            torch.save({"step": step, "rng": rng_state(), **(state or {})}, tmp / "state.pt")
            _fsync_dir(tmp)
            if final.exists():  # left by a save that was killed before its pointer switch: never referenced
                shutil.rmtree(final)
            tmp.rename(final)
            _fsync_dir(slot)
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        previous = self.folder
        self.run._progress["saves"] = saves
        self.run._progress.setdefault("checkpoints", {})[self.key] = str(final.relative_to(self.root))
        if self.run.is_main:
            self.run._write_progress()
            if previous is not None and previous != final:
                shutil.rmtree(previous, ignore_errors=True)

    def load(self, *, restore_rng: bool = True) -> tuple[int, dict[str, dict[str, torch.Tensor]], dict]:
        """Return ``(step, {module: state_dict}, state)`` and restore the RNG states."""
        folder = self.folder
        if folder is None:
            raise CorruptCheckpoint(f"no checkpoint for {self.key!r} in {self.root}")
        verify(
            folder, self.key
        )  # checked when needed: a bad checkpoint of a finished phase blocks nothing else
        weights = load_weights(folder / "weights.safetensors")
        try:
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
        except Exception as e:
            raise CorruptCheckpoint(
                f"corrupt checkpoint {folder / 'state.pt'}: {str(e).splitlines()[0]}"
            ) from None
        if restore_rng:
            set_rng_state(state["rng"])
        return int(state["step"]), weights, state
