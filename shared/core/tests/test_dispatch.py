import os
import subprocess
import sys
import textwrap

import pytest
from paperkit import dispatch


@pytest.mark.parametrize(
    "argv, name",
    [
        (["/usr/bin/uv", "run", "--package", "ema-scale", "train"], "ema-scale"),
        (["uv", "run", "--package=ewc_ssl", "train", "--help"], "ewc-ssl"),
        (["uv", "run", "--frozen", "--package", "polyview", "torchrun", "--no-python", "train"], "polyview"),
        (["python3", "-m", "uv", "run", "--package", "part", "train"], "part"),
        (["uv", "run", "--extra", "cuda", "--package", "ema-scale", "train"], "ema-scale"),
        (["uv", "run", "--extra=cuda", "--package", "ema-scale", "train"], "ema-scale"),
        (["uv", "run", "--with", "rich", "--package", "polyview", "train"], "polyview"),
        (["uv", "run", "-w", "rich", "--package", "polyview", "train"], "polyview"),
        (["uv", "run", "--python", "3.11", "--package", "attn2mamba", "train"], "attn2mamba"),
        (["uv", "run", "-p", "3.11", "--package", "attn2mamba", "train"], "attn2mamba"),
        (["uv", "run", "-p3.11", "--package", "attn2mamba", "train"], "attn2mamba"),
        (["uv", "run", "--group", "dev", "--package", "cdslm", "train"], "cdslm"),
        (["uv", "-q", "run", "--package", "part", "train"], "part"),
        (["uv", "-qq", "--cache-dir", "/tmp/c", "run", "-v", "--package", "part", "train"], "part"),
        (
            ["uv", "--directory", "x", "run", "--frozen", "--package", "policy-transfer", "train"],
            "policy-transfer",
        ),
        (
            ["uv", "run", "--no-sync", "--env-file", ".env", "--package=affective_music", "train"],
            "affective-music",
        ),
        (
            ["uv", "run", "--with", "--package", "--package", "ewc-ssl", "train"],
            "ewc-ssl",
        ),  # a value, then ours
        (["uv", "run", "--", "train", "--package", "x"], None),
        (["uv", "run", "train", "--package", "x"], None),  # after the command: the trainer's own flag
        (["uv", "run", "--with", "x", "train", "--package", "y"], None),
        (["uv", "--package", "a"], None),  # not `run`
        (["uv", "pip", "run", "--package", "a"], None),
        (["uv", "sync", "--package", "x"], None),
        (["bash", "-c", "train"], None),
    ],
)
def test_uv_run_command_lines(argv, name):
    assert dispatch._from_uv_run(argv) == name


def test_project_path(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "Policy_Transfer"\n')
    assert dispatch._from_uv_run(["uv", "run", "--project", str(tmp_path), "train"]) == "policy-transfer"


def test_explicit_trainer_wins_and_is_removed():
    name, how, rest = dispatch.select(["--trainer", "ema-scale", "--preset", "smoke"])
    assert (name, how, rest) == ("ema-scale", "--trainer", ["--preset", "smoke"])
    assert dispatch.select(["--trainer=a_b"])[0] == "a-b"


def test_env_then_cwd(monkeypatch, tmp_path):
    monkeypatch.setattr(dispatch, "_parent_cmdlines", lambda: iter([]))
    monkeypatch.setenv(dispatch.ENV, "polyview")
    assert dispatch.select([])[:2] == ("polyview", f"${dispatch.ENV}")
    monkeypatch.delenv(dispatch.ENV)
    member = tmp_path / "packages" / "m"
    (member / "src").mkdir(parents=True)
    (member / "pyproject.toml").write_text('[project]\nname = "m"\n')
    monkeypatch.chdir(member / "src")
    monkeypatch.setattr(dispatch, "trainers", lambda: {"m": None, "n": None})
    assert dispatch.select([])[0] == "m"
    monkeypatch.chdir(tmp_path)
    assert dispatch.select([])[0] is None


def test_no_trainer_lists_and_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(dispatch, "_parent_cmdlines", lambda: iter([]))
    monkeypatch.delenv(dispatch.ENV, raising=False)
    monkeypatch.setattr(dispatch, "trainers", lambda: {"a": None, "b": None})
    monkeypatch.setattr(dispatch, "_from_cwd", lambda: None)
    assert dispatch.main([]) == 2
    err = capsys.readouterr().err
    assert "installed: a, b" in err and "--package NAME" in err and len(err.strip().splitlines()) == 1
    assert dispatch.main(["--trainer", "zzz"]) == 2
    assert "zzz has no trainer" in capsys.readouterr().err


def test_real_ancestor_process_is_read(tmp_path):
    """A process named `uv` running `run --package NAME ...` is found from a grandchild, through a shell."""
    fake_uv = tmp_path / "uv"
    fake_uv.symlink_to(sys.executable)
    # python treats the argument `run` as its script: the process's command line is `uv run --package ...`
    (tmp_path / "run").write_text("import subprocess, sys\nsys.exit(subprocess.call(sys.argv[3:]))\n")
    probe = textwrap.dedent("""
        from paperkit import dispatch
        print(dispatch.select([])[:2])
    """)
    out = subprocess.run(
        [str(fake_uv), "run", "--package", "some-pkg", "bash", "-c", f'{sys.executable} -c "{probe}"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != dispatch.ENV},
    )
    assert out.returncode == 0, out.stderr
    assert "('some-pkg', 'the parent command `uv run --package some-pkg`')" in out.stdout


def test_a_named_package_without_a_trainer_fails_loudly(monkeypatch, capsys, tmp_path):
    """The parent names a package that has no trainer: exit 2 naming it, never another package's trainer."""
    monkeypatch.setattr(
        dispatch, "_parent_cmdlines", lambda: iter([["uv", "run", "--package", "paperkit", "train"]])
    )
    monkeypatch.setattr(dispatch, "trainers", lambda: {"polyview": None})
    monkeypatch.setattr(dispatch, "_from_cwd", lambda: "polyview")
    assert dispatch.main([]) == 2
    err = capsys.readouterr().err
    assert "paperkit has no trainer" in err and "uv run --package paperkit" in err
    monkeypatch.setattr(
        dispatch,
        "_parent_cmdlines",
        lambda: iter([["uv", "run", "--project", str(tmp_path / "nope"), "train"]]),
    )
    assert dispatch.main([]) == 2
    assert "no project at" in capsys.readouterr().err


def test_project_path_relative_to_directory(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "pyproject.toml").write_text('[project]\nname = "m"\n')
    argv = ["uv", "--directory", str(tmp_path), "run", "--project", "m", "train"]
    assert dispatch._from_uv_run(argv) == "m"
