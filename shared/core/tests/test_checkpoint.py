import random

import numpy as np
import pytest
import torch
from paperkit.checkpoint import (
    CorruptCheckpoint,
    load_weights,
    rng_state,
    save_weights,
    set_rng_state,
    verify,
)
from paperkit.run import Run


def test_rng_state_round_trip():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_weights_round_trip_and_tied_tensors(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    m[1].weight = m[0].weight  # tied: safetensors refuses shared storage unless we copy
    save_weights(tmp_path / "w.safetensors", {"m": m})
    back = load_weights(tmp_path / "w.safetensors")["m"]
    for k, v in m.state_dict().items():
        assert torch.equal(back[k], v)


def test_checkpoint_slot_is_atomic_and_keeps_only_the_latest(tmp_path):
    run = Run.open("t", {"seed": 0}, out=str(tmp_path / "r"), resume=None)
    ck = run.checkpoint("a/b")
    assert not ck.exists()
    lin = torch.nn.Linear(2, 2)
    ck.save(5, {"lin": lin}, {"x": 1})
    ck.save(10, {"lin": lin}, {"x": 2})
    steps = sorted(p.name for p in (tmp_path / "r" / "checkpoints" / "a--b").iterdir())
    assert steps == ["step-000000010-2"]
    step, weights, state = ck.load()
    assert step == 10 and state["x"] == 2 and torch.equal(weights["lin"]["weight"], lin.weight)
    reopened = Run.open("t", {"seed": 0}, out=None, resume=str(tmp_path / "r"))
    assert reopened.checkpoint("a/b").load()[0] == 10


def test_corrupt_files_are_named(tmp_path):
    run = Run.open("t", {}, out=str(tmp_path / "r"), resume=None)
    ck = run.checkpoint("k")
    ck.save(1, {"lin": torch.nn.Linear(2, 2)})
    (ck.folder / "state.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptCheckpoint, match="state.pt"):
        ck.load()
    with pytest.raises(CorruptCheckpoint, match="corrupt checkpoint for 'k'"):
        verify(ck.folder, "k")


class Killed(BaseException):
    """Stands for SIGKILL at one point of a save: nothing after it runs."""


def _kill_at(monkeypatch, point):
    """Make the ``point``-th filesystem step of a checkpoint save die."""
    import paperkit.checkpoint as ck_mod

    calls = {"n": 0}

    def hit():
        calls["n"] += 1
        if calls["n"] == point:
            raise Killed

    real_rename, real_rmtree, real_write = ck_mod.Path.rename, ck_mod.shutil.rmtree, Run._write_progress
    monkeypatch.setattr(ck_mod.Path, "rename", lambda self, t: (hit(), real_rename(self, t))[1])
    monkeypatch.setattr(ck_mod.shutil, "rmtree", lambda p, **k: (hit(), real_rmtree(p, **k))[1])
    monkeypatch.setattr(Run, "_write_progress", lambda self: (hit(), real_write(self))[1])
    return calls


@pytest.mark.parametrize("point", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("same_step", [True, False])
def test_a_kill_at_any_point_of_a_save_leaves_a_loadable_checkpoint(tmp_path, monkeypatch, point, same_step):
    """Save step 5, then save again (the same step, as after an interrupt at an arm's last step, or step 6) and
    die at each filesystem step of that second save: the reopened run loads a complete checkpoint."""
    run = Run.open("t", {"seed": 0}, out=str(tmp_path / "r"), resume=None)
    lin = torch.nn.Linear(2, 2)
    run.checkpoint("k").save(5, {"lin": lin}, {"x": 1})
    calls = _kill_at(monkeypatch, point)
    with torch.no_grad():
        lin.weight.add_(1.0)
    try:
        run.checkpoint("k").save(5 if same_step else 6, {"lin": lin}, {"x": 2})
    except Killed:
        pass
    monkeypatch.undo()
    assert calls["n"] >= min(point, 3)
    reopened = Run.open("t", {"seed": 0}, out=None, resume=str(tmp_path / "r"))
    step, weights, state = reopened.checkpoint("k").load()
    assert (step, state["x"]) in {(5, 1), (5 if same_step else 6, 2)}
    if state["x"] == 2:
        assert torch.equal(weights["lin"]["weight"], lin.weight)
