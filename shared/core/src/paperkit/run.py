"""The run folder: config, metrics, figures, claims, checkpoints, and the step loop that ties them together.

Layout of ``--out DIR`` (default ``runs/PACKAGE/TIMESTAMP``)::

    config.json        the resolved config (with the preset's name)
    metrics.jsonl      one JSON object per logged step
    summary.json       results and "claims"
    *.png              figures
    checkpoints/       progress.json (finished phases, metrics written) and one folder per checkpoint key

Only rank 0 writes. Nothing here imports torch at module level; checkpoints load it on first use.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .claims import Claim, format_table
from .config import ConfigError
from .provenance import collect_provenance


class Interrupted(Exception):
    """Raised after SIGINT/SIGTERM once the run has saved its state."""


class AlreadyFinished(Exception):
    """``--resume`` of a run that already finished: nothing to do, nothing is touched."""


class NonFiniteLoss(RuntimeError):
    """A NaN or inf loss: the run stops, the last good checkpoint is kept."""


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a broadcast when a process group is up; else each rank's own)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class Run:
    """One run folder. Create it with :meth:`open`; use it as a context manager to catch Ctrl-C/SIGTERM."""

    def __init__(self, out: Path, package: str, config: dict, *, resuming: bool, progress: dict):
        self.out = out
        self.package = package
        self.config = config
        self.resuming = resuming
        self.is_main = _rank() == 0
        self.claims: list[Claim] = []
        self._progress = progress
        self._metrics_lines = int(progress.get("metrics_lines", 0))
        self._stop = False
        self._stop_time = 0.0
        self._old_handlers: dict = {}
        self._t0 = time.perf_counter()
        self._elapsed_before = float(progress.get("elapsed", 0.0))
        self._cpu0 = _cpu_seconds()
        self._cpu_before = float(progress.get("cpu", 0.0))
        self.figures = list(progress.get("figures", []))  # figures made in phases that a resume skips

    # -- creation ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, package: str, config: dict, *, out: str | None, resume: str | None) -> Run:
        """Create a new run folder, or reopen ``resume`` at its last checkpoint. Bad input: ConfigError,
        raised before anything is written."""
        if resume is not None:
            folder = Path(resume)
            prog_path = folder / "checkpoints" / "progress.json"
            if not prog_path.is_file():
                raise ConfigError(
                    f"--resume {resume}: no checkpoint in that folder (checkpoints/progress.json is missing)"
                )
            try:
                progress = json.loads(prog_path.read_text())
                if not isinstance(progress, dict):
                    raise ValueError("not a mapping")
            except (OSError, ValueError) as e:
                raise ConfigError(f"--resume {resume}: corrupt checkpoint {prog_path}: {e}") from None
            if progress.get("finished") and (folder / "summary.json").is_file():
                raise AlreadyFinished(f"{folder} is finished; its results are in {folder / 'summary.json'}")
            run = cls(folder, package, config, resuming=True, progress=progress)
            if run.is_main:
                run._truncate_metrics()
            return run
        progress = {"metrics_lines": 0, "phases": {}, "checkpoints": {}}
        decision: dict[str, str] | None = None
        if _rank() == 0:  # decided once, on rank 0, and the same decision reaches every rank
            folder = (
                Path(out)
                if out is not None
                else Path("runs") / package / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            )
            try:
                if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                    raise ConfigError(
                        f"--out {folder} already holds files; continue it with --resume {folder} "
                        "or choose another --out"
                    )
                (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
                write_json_atomic(
                    folder / "config.json", {**config, "provenance": collect_provenance(package, config)}
                )
                (folder / "metrics.jsonl").touch()
                write_json_atomic(folder / "checkpoints" / "progress.json", progress)
                decision = {"folder": str(folder)}
            except ConfigError as e:
                decision = {"error": str(e)}
            except OSError as e:
                decision = {"error": f"--out {folder}: cannot write the run folder there ({e.strerror or e})"}
        decision = _from_rank0(decision)
        if decision is None:  # torchrun without a process group: trust --out (the default folder needs one)
            if out is None:
                raise ConfigError("under torchrun the default --out needs the process group; pass --out DIR")
            decision = {"folder": out}
        if "error" in decision:
            raise ConfigError(decision["error"])
        return cls(Path(decision["folder"]), package, config, resuming=False, progress=progress)

    def _truncate_metrics(self) -> None:
        path = self.out / "metrics.jsonl"
        lines = path.read_text().splitlines(keepends=True) if path.exists() else []
        keep = lines[: self._metrics_lines]
        tmp = path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(keep))
        os.replace(tmp, path)

    def elapsed(self) -> float:
        """Wall seconds of this run over all its segments (a resumed run adds to the time before)."""
        return self._elapsed_before + time.perf_counter() - self._t0

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system, this process and its finished children) over all segments: on a shared
        machine this says more about a run's cost than its wall time."""
        return self._cpu_before + _cpu_seconds() - self._cpu0

    def _write_progress(self) -> None:
        if self.is_main:
            self._progress["metrics_lines"] = self._metrics_lines
            self._progress["elapsed"] = round(self.elapsed(), 3)
            self._progress["cpu"] = round(self.cpu_seconds(), 3)
            self._progress["figures"] = self.figures
            write_json_atomic(self.out / "checkpoints" / "progress.json", self._progress)

    # -- signals -------------------------------------------------------------------------------------------

    def __enter__(self) -> Run:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop:
            # torchrun forwards the terminal's Ctrl-C a moment after the worker got it: that is the same stop
            if time.monotonic() - self._stop_time < 2.0:
                return
            signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self._stop = True
        self._stop_time = time.monotonic()
        print(
            f"\n{signal.Signals(signum).name}: saving a checkpoint and stopping (again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def stop_requested(self) -> bool:
        stop = self._stop
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            import torch

            flag = torch.tensor([1.0 if stop else 0.0])
            if dist.get_backend() == "nccl":
                flag = flag.cuda()
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item() > 0)
        return stop

    # -- the step loop -------------------------------------------------------------------------------------

    def steps(
        self,
        total: int,
        *,
        start: int = 0,
        desc: str = "",
        save: Callable[[int], None] | None = None,
        every: int | None = None,
    ) -> Iterator[int]:
        """Yield step indices ``start..total-1`` with a progress bar. After each step: on SIGINT/SIGTERM call
        ``save(steps_done)`` and raise :class:`Interrupted`; every ``every`` steps call ``save(steps_done)``."""
        from tqdm.auto import tqdm

        every = every or int(self.config.get("checkpoint_every", 0)) or None
        bar = tqdm(
            total=total,
            initial=start,
            desc=desc,
            disable=not self.is_main,
            leave=False,
            mininterval=1.0,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        try:
            for step in range(start, total):
                yield step
                bar.update(1)
                done = step + 1
                if self.stop_requested():
                    if save is not None:
                        save(done)
                    raise Interrupted(f"{desc} at step {done}/{total}")
                if save is not None and every and done % every == 0 and done < total:
                    save(done)
        finally:
            bar.close()

    def check_finite(self, value: float, *, where: str) -> float:
        """Stop the run with a clear message when a loss is NaN or inf."""
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"loss is {value} at {where}; stopped, the last good checkpoint is kept in "
                f"{self.out / 'checkpoints'}"
            )
        return value

    def phase(self, key: str, fn: Callable[[], dict]) -> dict:
        """Run ``fn`` once per run: a finished phase's (JSON) result is stored and returned on resume."""
        done = self._progress["phases"]
        if key in done:
            return done[key]
        result = fn()
        done[key] = json.loads(json.dumps(result, default=_json_default))
        self._write_progress()
        return done[key]

    def checkpoint(self, key: str):
        """The checkpoint slot ``key`` (a :class:`paperkit.checkpoint.Checkpoint`)."""
        from .checkpoint import Checkpoint

        return Checkpoint(self, key)

    # -- outputs -------------------------------------------------------------------------------------------

    def log(self, **metrics: Any) -> None:
        """Append one JSON object to metrics.jsonl."""
        if not self.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics, default=_json_default) + "\n")
        self._metrics_lines += 1

    def claim(self, id: str, statement: str, value: float | None, op: str, threshold: float) -> Claim:
        """A single deterministic value against a threshold (see :meth:`Claim.check`)."""
        return self.add_claim(Claim.check(id, statement, value, op, threshold))

    def claim_difference(self, id: str, statement: str, **kwargs: Any) -> Claim:
        """The method arm beats its control over seeds (see :meth:`Claim.difference`)."""
        return self.add_claim(Claim.difference(id, statement, **kwargs))

    def claim_over_seeds(self, id: str, statement: str, **kwargs: Any) -> Claim:
        """The method reaches a level over seeds that its control does not (see :meth:`Claim.over_seeds`)."""
        return self.add_claim(Claim.over_seeds(id, statement, **kwargs))

    def add_claim(self, claim: Claim) -> Claim:
        self.claims.append(claim)
        return claim

    def save_figure(self, fig: Any, name: str) -> Path:
        path = self.out / f"{name}.png"
        if self.is_main:
            fig.savefig(path, dpi=120, bbox_inches="tight")
            if path.name not in self.figures:
                self.figures.append(path.name)
            self._write_progress()
        import matplotlib.pyplot as plt

        plt.close(fig)
        return path

    def finish(self, results: dict) -> dict:
        """Write ``summary.json`` (results with the run's total ``wall_seconds``, claims, figures, provenance) and
        mark the run finished: a later ``--resume`` leaves it alone."""
        results = {
            **results,
            "wall_seconds": round(self.elapsed(), 1),
            "cpu_seconds": round(self.cpu_seconds(), 1),
        }
        summary = {
            "package": self.package,
            "preset": self.config.get("preset"),
            "finished": _dt.datetime.now().isoformat(timespec="seconds"),
            "results": results,
            "claims": [c.to_dict() for c in self.claims],
            "figures": self.figures,
            "provenance": collect_provenance(self.package, self.config),
        }
        if self.is_main:
            write_json_atomic(self.out / "summary.json", summary)
            self._progress["finished"] = True
            self._write_progress()
        return summary

    def claims_table(self) -> str:
        return format_table(self.claims)
