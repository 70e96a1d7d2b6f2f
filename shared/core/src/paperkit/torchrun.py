"""``paperkit-torchrun`` (or ``python -m paperkit.torchrun``): torchrun with one-line endings.

Takes exactly torchrun's arguments and runs the same launcher (``torch.distributed.run``). What differs is how it
ends when the workers stop on purpose:

- Ctrl-C (SIGINT) or SIGTERM: every worker saves its checkpoint and exits 130 (see :class:`paperkit.run.Run`);
  torchrun's own launcher would then print a ``SignalException`` or ``ChildFailedError`` traceback and exit 1.
  Here it prints one line and exits 130 (143 for SIGTERM), so that scripts and schedulers can tell an
  interruption from a crash.
- The workers exited 2 (a bad flag or config: each has printed its one-line error): exit 2, nothing more.
- Anything else is a real failure: one line per failed rank with its exit code (the workers' own tracebacks are
  above it), exit 1.

Example: ``uv run --package polyview paperkit-torchrun --standalone --nproc-per-node 2 --no-python train``.
The launcher gives workers 30 s to exit after a signal before it kills them (torchrun's default).
"""

from __future__ import annotations

import signal
import sys


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except SignalException as e:
        name = signal.Signals(e.sigval).name
        print(f"torchrun: {name}: workers saved their state and stopped", file=sys.stderr)
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        codes = {rank: f.exitcode for rank, f in e.failures.items()}
        # when one worker fails, the launcher stops the others with SIGTERM: judge on the first failures
        first = [c for c in codes.values() if c != -signal.SIGTERM] or list(codes.values())
        if all(c in (130, -signal.SIGINT) for c in first):
            print("torchrun: interrupted: workers saved their state and stopped", file=sys.stderr)
            return 130
        if all(c in (143, -signal.SIGTERM) for c in first):
            print("torchrun: terminated: workers saved their state and stopped", file=sys.stderr)
            return 143
        if all(c == 2 for c in first):
            return 2  # each worker printed its one-line error
        for rank, code in sorted(codes.items()):
            print(f"torchrun: rank {rank} failed with exit code {code}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C while the launcher shuts the workers down
        print("torchrun: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
