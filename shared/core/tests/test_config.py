import json

import pytest
from paperkit.config import ConfigError, parse, to_dict
from toy import PRESETS, ToyConfig


def p(*argv):
    return parse(ToyConfig, PRESETS, list(argv), prog="train")


def test_precedence_default_preset_file_flag(tmp_path):
    cfg, opts = p()
    assert cfg.steps == 80 and opts.preset == "default"
    cfg, _ = p("--preset", "smoke")
    assert cfg.steps == 50
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"steps": 7, "lr": 0.2}))
    cfg, _ = p("--preset", "smoke", "--config", str(f))
    assert (cfg.steps, cfg.lr) == (7, 0.2)
    cfg, _ = p("--preset", "smoke", "--config", str(f), "--steps", "9")
    assert (cfg.steps, cfg.lr) == (9, 0.2)


def test_toml_config_tuples_and_bools(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('kappas = [1, 4, 16]\nname = "x"\n')
    cfg, _ = p("--config", str(f))
    assert cfg.kappas == (1, 4, 16) and cfg.name == "x"
    cfg, opts = p("--kappas", "2,8", "--strict")
    assert cfg.kappas == (2, 8) and opts.strict


def test_underscore_and_dash_flags():
    assert p("--batch-size", "3")[0].batch_size == 3
    assert p("--batch_size", "5")[0].batch_size == 5


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--preset", "huge"], "invalid choice"),
        (["--nope", "1"], "unrecognized arguments"),
        (["--lr", "-0.1"], "--lr must be > 0"),
        (["--batch-size", "-4"], "--batch-size must be >= 1"),
        (["--batch-size", "two"], "is not a valid int"),
        (["--kappas", "1,0"], "--kappas must be >= 1"),
        (["--config", "/nonexistent/c.json"], "no such file"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_bad_input_is_one_clear_error(argv, words):
    with pytest.raises(ConfigError, match=words) as e:
        p(*argv)
    assert "\n" not in str(e.value)


def test_unparsable_and_unknown_config_keys(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="does not parse"):
        p("--config", str(bad))
    unknown = tmp_path / "u.json"
    unknown.write_text('{"stepz": 3}')
    with pytest.raises(ConfigError, match="unknown field 'stepz'"):
        p("--config", str(unknown))


def test_resume_uses_saved_config_and_refuses_changes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(to_dict(ToyConfig(steps=11), "smoke")))
    cfg, opts = p("--resume", str(tmp_path))
    assert cfg.steps == 11 and opts.preset == "smoke"
    with pytest.raises(ConfigError, match="drop --lr"):
        p("--resume", str(tmp_path), "--lr", "0.3")
    with pytest.raises(ConfigError, match="config.json is missing"):
        p("--resume", str(tmp_path / "nowhere"))


def test_help_lists_every_knob_with_default(capsys):
    with pytest.raises(SystemExit) as e:
        p("--help")
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--steps",
        "--lr",
        "--batch-size",
        "--kappas",
        "--seed",
        "--device",
        "--preset",
        "--resume",
        "--strict",
        "--out",
        "--config",
    ):
        assert flag in out
    assert "(default: 80)" in out


def test_help_text_may_contain_percent_signs(capsys):
    from dataclasses import dataclass

    from paperkit.config import BaseConfig, knob

    @dataclass
    class C(BaseConfig):
        share: float = knob(0.5, "share of tokens (50% by default)", low=0, high=1)

    with pytest.raises(SystemExit):
        parse(C, {"default": {}}, ["--help"], prog="train")
    assert "(50% by default)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"lr": 1e400}', "finite"),  # json reads 1e400 as inf
        ('{"lr": NaN}', "finite"),
        ('{"steps": true}', "is not a int"),
        ('{"lr": true}', "is not a float"),
        ('{"name": 5}', "is not a str"),
        ('{"kappas": 4}', "is not a valid tuple"),
        ('{"kappas": [1, true]}', "is not a int"),
        ('{"steps": 2.5}', "is not a int"),
        ('{"out": "elsewhere"}', "'out' is a run option"),
        ('{"strict": true}', "'strict' is a run option"),
        ('{"preset": "nope"}', "unknown preset"),
    ],
)
def test_config_files_are_typed_strictly(tmp_path, text, words):
    f = tmp_path / "c.json"
    f.write_text(text)
    with pytest.raises(ConfigError, match=words):
        p("--config", str(f))


@pytest.mark.parametrize(
    "flag, value", [("--lr", "inf"), ("--lr", "-inf"), ("--lr", "nan"), ("--steps", "inf")]
)
def test_non_finite_numbers_on_the_command_line(flag, value):
    with pytest.raises(ConfigError, match=flag):
        p(flag, value)


def test_a_config_files_preset_is_used_unless_the_command_line_disagrees(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"preset": "smoke", "lr": 0.5}))
    cfg, opts = p("--config", str(f))
    assert opts.preset == "smoke" and cfg.steps == 50 and cfg.lr == 0.5
    assert p("--config", str(f), "--preset", "smoke")[1].preset == "smoke"
    with pytest.raises(ConfigError, match="drop one"):
        p("--config", str(f), "--preset", "paper")
