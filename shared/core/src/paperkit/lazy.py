"""Lazy package exports: ``import PKG`` stays cheap (no torch) until a name is used.

A package ``__init__`` declares where each public name lives::

    from paperkit.lazy import lazy_exports

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {
        ".model": ["MMDiT", "patchify"],
        ".mel": ["LogMel"],
        "paperkit.ema": ["ScaledEMA"],      # a re-export from another package
        ".kernels": None,                    # a submodule exposed as an attribute
    })

``from PKG import MMDiT`` then imports ``PKG.model`` on first use (PEP 562 module ``__getattr__``), so the
``train`` command can parse ``--help`` and the config without importing the trainer's torch modules.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Iterable


def lazy_exports(
    package: str, where: dict[str, Iterable[str] | None]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """Return ``(__getattr__, __dir__, __all__)`` for ``package`` from ``{module: [names]}``.

    A module written with a leading dot is relative to ``package``; ``None`` in place of the names exposes the
    module itself under its last component. A name declared twice is an error (it would depend on order)."""
    origin: dict[str, tuple[str, str | None]] = {}
    for module, names in where.items():
        target = package + module if module.startswith(".") else module
        entries = [(module.rsplit(".", 1)[-1], None)] if names is None else [(n, n) for n in names]
        for public, attr in entries:
            if public in origin:
                raise ValueError(f"{package}: {public!r} is exported twice")
            origin[public] = (target, attr)

    def __getattr__(name: str) -> object:
        try:
            target, attr = origin[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(target)
        value = module if attr is None else getattr(module, attr)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # later lookups skip __getattr__
        return value

    class _LazyModule(types.ModuleType):
        def __setattr__(self, name: str, value: object) -> None:
            # Importing submodule PKG.f binds the module as PKG.f, which would shadow an exported function f
            # of the same name defined in it: bind the function instead.
            spec = origin.get(name)
            if spec is not None and spec[1] is not None and isinstance(value, types.ModuleType):
                if value.__name__ == spec[0] == f"{package}.{name}":
                    value = getattr(value, spec[1])
            super().__setattr__(name, value)

    sys.modules[package].__class__ = _LazyModule

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(origin))

    return __getattr__, __dir__, sorted(origin)
