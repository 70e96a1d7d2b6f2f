import json
import re
import signal
from importlib.metadata import version

import pytest
import torch
from paperkit.claims import Claim, format_table
from paperkit.testing import interrupt_when as _interrupt_when
from toy import main


def read(folder, name):
    return json.loads((folder / name).read_text())


def test_run_folder_layout_and_claims(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--preset", "smoke", "--out", str(out)]) == 0
    assert read(out, "config.json")["steps"] == 50 and read(out, "config.json")["preset"] == "smoke"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == list(range(50))
    summary = read(out, "summary.json")
    claims = {c["id"]: c for c in summary["claims"]}
    assert claims["fits"]["passed"] is True and claims["impossible"]["passed"] is False
    assert claims["fits"]["value"] == summary["results"]["error"]
    table = capsys.readouterr().out
    assert "fits" in table and "FAIL" in table


def test_strict_fails_on_a_failed_claim(tmp_path):
    assert main(["--preset", "smoke", "--out", str(tmp_path / "r"), "--strict"]) == 1


def test_claim_passed_is_computed():
    assert Claim.check("a", "s", 0.1, "<=", 0.2).passed
    assert not Claim.check("a", "s", float("nan"), "<=", 0.2).passed
    assert not Claim.check("a", "s", None, ">", 0).passed
    with pytest.raises(ValueError):
        Claim.check("a", "s", 1, "~", 0)
    assert "PASS" in format_table([Claim.check("a", "s", 1, ">", 0)])


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds files" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("argv", [["--preset", "nope"], ["--lr", "-1"], ["--batch-size", "-2"], ["--bogus"]])
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, capsys, argv):
    out = tmp_path / "r"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("train (toy): error:")
    assert not out.exists()


def test_resume_without_checkpoint_and_with_corrupt_checkpoint(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    assert main(["--resume", str(empty)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    out = tmp_path / "r"
    assert main(["--preset", "smoke", "--out", str(out), "--checkpoint-every", "10"]) == 0
    capsys.readouterr()
    weights = next((out / "checkpoints").glob("toy/step-*/weights.safetensors"))
    weights.write_bytes(b"garbage" * 10)
    progress = read(out / "checkpoints", "progress.json")
    del progress["finished"]  # as if it had been interrupted after its last checkpoint
    (out / "checkpoints" / "progress.json").write_text(json.dumps(progress))
    before = (out / "metrics.jsonl").read_text()
    assert main(["--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt checkpoint" in err and len(err.splitlines()) == 1
    assert (out / "metrics.jsonl").read_text() == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(["--preset", "smoke", "--out", str(out), "--checkpoint-every", "5", "--blow-up-at", "12"]) == 1
    )
    err = capsys.readouterr().err
    assert "loss is nan at step 12" in err
    progress = read(out / "checkpoints", "progress.json")
    assert re.fullmatch(r"toy/step-000000010-\d+", progress["checkpoints"]["toy"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume_equals_uninterrupted(tmp_path, sig):
    args = ["--steps", "40", "--slow", "0.01", "--checkpoint-every", "7"]
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    out = tmp_path / "cut"
    t = _interrupt_when(out / "metrics.jsonl", 15, sig)
    assert main([*args, "--out", str(out)]) == 130
    t.join()
    n = len((out / "metrics.jsonl").read_text().splitlines())
    assert 15 <= n < 40
    assert main(["--resume", str(out)]) == 0
    assert (out / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    assert read(out, "summary.json")["results"] == {
        **read(ref, "summary.json")["results"],
        "wall_seconds": read(out, "summary.json")["results"]["wall_seconds"],
    }
    from safetensors.torch import load_file

    w = [load_file(str(next((d / "checkpoints").glob("toy/step-*/weights.safetensors")))) for d in (ref, out)]
    assert torch.equal(w[0]["model.weight"], w[1]["model.weight"])


def test_threads_knob_caps_torch_and_is_restored(tmp_path):
    from paperkit.launch import limit_threads

    before = torch.get_num_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with limit_threads(0):
        assert torch.get_num_threads() == before


def test_provenance_in_config_and_summary_and_config_json_reads_back(tmp_path):
    out = tmp_path / "run"
    assert main(["--preset", "smoke", "--out", str(out), "--threads", "1"]) == 0
    for name in ("config.json", "summary.json"):
        prov = read(out, name)["provenance"]
        assert {"cpu", "cpu_count", "gpu", "versions", "threads", "world_size", "git_commit"} <= set(prov)
        assert prov["cpu"] and prov["versions"]["paperkit"] and prov["world_size"] == 1
    summary_prov = read(out, "summary.json")["provenance"]
    assert summary_prov["threads"]["torch"] == 1 and summary_prov["threads"]["config"] == 1
    assert summary_prov["versions"]["torch"] == version("torch")
    # a run's own config.json is a valid --config for a new run (its provenance is a record, not a field)
    assert main(["--config", str(out / "config.json"), "--out", str(tmp_path / "again")]) == 0
    assert read(tmp_path / "again", "config.json")["steps"] == 50


def test_resumed_summary_keeps_figures_and_total_wall_time_and_finished_runs_are_left_alone(tmp_path, capsys):
    from paperkit.run import Run

    out = tmp_path / "r"
    run = Run.open("t", {"seed": 0}, out=str(out), resume=None)

    def first_phase():
        import matplotlib.pyplot as plt

        fig, _ = plt.subplots()
        run.save_figure(fig, "early")
        return {"a": 1}

    run.phase("one", first_phase)
    run._elapsed_before = 100.0  # as if the first segment had run for 100 s
    run._write_progress()
    resumed = Run.open("t", {"seed": 0}, out=None, resume=str(out))
    assert resumed.phase("one", lambda: pytest.fail("a finished phase runs again")) == {"a": 1}
    summary = resumed.finish({"r": 1})
    assert summary["figures"] == ["early.png"] and summary["results"]["wall_seconds"] >= 100.0
    assert summary["results"]["cpu_seconds"] >= 0.0
    before = (out / "summary.json").read_bytes()
    # --resume of a finished run: says so, exit 0, touches nothing
    assert main(["--resume", str(out)]) == 0
    assert "is finished" in capsys.readouterr().out
    assert (out / "summary.json").read_bytes() == before


def test_a_corrupt_checkpoint_blocks_only_the_phase_that_needs_it(tmp_path):
    from paperkit.checkpoint import CorruptCheckpoint
    from paperkit.run import Run

    out = tmp_path / "r"
    run = Run.open("t", {}, out=str(out), resume=None)
    run.checkpoint("done-phase").save(3, {"lin": torch.nn.Linear(2, 2)})
    run.checkpoint("next-phase").save(1, {"lin": torch.nn.Linear(2, 2)})
    (run.checkpoint("done-phase").folder / "state.pt").write_bytes(b"\x00" * 64)
    resumed = Run.open("t", {}, out=None, resume=str(out))  # opens: nothing is loaded yet
    assert resumed.checkpoint("next-phase").load()[0] == 1
    with pytest.raises(CorruptCheckpoint, match="done-phase"):
        resumed.checkpoint("done-phase").load()


@pytest.mark.slow
def test_torchrun_ranks_agree_on_the_run_folder_and_on_errors(tmp_path):
    """Under torchrun (2 gloo processes) rank 0 decides the run folder and every rank gets the same answer:
    an --out that holds files fails on every rank with the same one line; the default folder is one folder."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "toy_main.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom toy import main\nsys.exit(main())\n"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    p = subprocess.run(
        [*torchrun, str(script), "--out", str(busy), "--threads", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    errors = [l for l in p.stderr.splitlines() if l.startswith("train (toy): error:")]
    assert (
        p.returncode != 0
        and len(errors) == 2
        and errors[0] == errors[1]
        and "already holds files" in errors[0]
    )
    assert "src/paperkit/" not in p.stderr  # no worker traceback (torchrun's launcher prints its own summary)
    p = subprocess.run(
        [*torchrun, str(script), "--preset", "smoke", "--threads", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    folders = list((tmp_path / "runs" / "toy").iterdir())
    assert len(folders) == 1 and (folders[0] / "summary.json").is_file()
    assert json.loads((folders[0] / "summary.json").read_text())["provenance"]["world_size"] == 2


def test_an_out_that_cannot_be_created_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file where a folder would go")  # root writes anywhere: chmod cannot stop it
    assert main(["--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write the run folder" in err


@pytest.mark.slow
def test_ctrl_c_under_paperkit_torchrun_is_one_line_and_exit_130(tmp_path):
    """A terminal's Ctrl-C reaches the launcher and both workers (one process group): the workers save, the
    launcher says so in one line and exits 130, no traceback anywhere. Workers that fail on a bad flag: exit 2."""
    import glob
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "toy_main.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom toy import main\nsys.exit(main())\n"
    )
    launcher = [
        sys.executable,
        "-m",
        "paperkit.torchrun",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(script),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [*launcher, "--steps", "1500", "--slow", "0.02", "--threads", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        metrics = glob.glob(str(tmp_path / "runs" / "toy" / "*" / "metrics.jsonl"))
        if metrics and len(Path(metrics[0]).read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "torchrun: SIGINT: workers saved their state and stopped" in err
    (run_dir,) = (tmp_path / "runs" / "toy").iterdir()
    progress = json.loads((run_dir / "checkpoints" / "progress.json").read_text())
    assert progress["checkpoints"], progress  # saved on the way out (resume == uninterrupted: test_resume_*)
    bad = subprocess.run([*launcher, "--steps", "0"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--steps" in bad.stderr
