"""paperkit.lazy: package exports imported on first use, and a body named by string imported after parsing."""

import subprocess
import sys
import textwrap

import pytest


def make_pkg(root, name="lazypkg"):
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from paperkit.lazy import lazy_exports

            __getattr__, __dir__, __all__ = lazy_exports(
                __name__, {".heavy": ["Thing"], ".tool": ["tool"], ".sub": None, "json": ["dumps"]}
            )
            """
        )
    )
    (pkg / "heavy.py").write_text(
        "import sys\nsys.modules['lazypkg_loaded_heavy'] = sys\nclass Thing: pass\n"
    )
    (pkg / "tool.py").write_text("def tool():\n    return 'the function'\n")
    (pkg / "sub.py").write_text("X = 1\n")
    return root


def run(root, code):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_names_load_on_first_use_only(tmp_path):
    make_pkg(tmp_path)
    got = run(
        tmp_path,
        """
        import sys, lazypkg
        print('lazypkg_loaded_heavy' in sys.modules)
        from lazypkg import Thing
        print('lazypkg_loaded_heavy' in sys.modules, Thing.__name__, lazypkg.sub.X, lazypkg.dumps([1]))
        print(sorted(lazypkg.__all__) == lazypkg.__all__, 'Thing' in dir(lazypkg))
        """,
    )
    assert got == ["False", "True", "Thing", "1", "[1]", "True", "True"]


def test_a_function_named_like_its_module_is_not_shadowed_by_the_module(tmp_path):
    make_pkg(tmp_path)
    # importing the submodule first (as a package's own code does) binds the module under the same name
    got = run(tmp_path, "import lazypkg.tool, lazypkg\nprint(callable(lazypkg.tool), lazypkg.tool())")
    assert got == ["True", "the", "function"]


def test_unknown_names_and_double_exports_fail(tmp_path):
    from paperkit.lazy import lazy_exports

    make_pkg(tmp_path)
    with pytest.raises(AssertionError, match="has no attribute 'nope'"):
        run(tmp_path, "import lazypkg\nlazypkg.nope")
    with pytest.raises(ValueError, match="exported twice"):
        lazy_exports("paperkit", {".a": ["x"], ".b": ["x"]})


def test_a_body_named_by_string_is_imported_after_parsing(tmp_path, monkeypatch):
    from dataclasses import dataclass

    from paperkit import BaseConfig, knob
    from paperkit.launch import run_trainer

    @dataclass
    class Config(BaseConfig):
        steps: int = knob(2, "steps", low=1)

    (tmp_path / "bodymod.py").write_text("def body(cfg, run):\n    return {'steps': cfg.steps}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("bodymod", None)
    rc = run_trainer(
        package="toy", config_cls=Config, presets={"default": {}}, body="bodymod:body", argv=["--help"]
    )
    assert rc == 0 and "bodymod" not in sys.modules
    rc = run_trainer(
        package="toy",
        config_cls=Config,
        presets={"default": {}},
        body="bodymod:body",
        argv=["--out", str(tmp_path / "run"), "--steps", "3"],
    )
    assert rc == 0 and "bodymod" in sys.modules
