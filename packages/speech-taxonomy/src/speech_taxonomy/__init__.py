"""speech_taxonomy: which evaluation for which speech model?

The three-axis taxonomy of de Seyssel & Dhekane, *Which Evaluation for Which Model? A Taxonomy for Speech Model
Assessment* (arXiv 2510.19509) as a validated data set and a query library::

    from speech_taxonomy import load, which, gaps

    tax = load()                                   # the packaged data (or load("path/to/data"))
    res = which(tax, tax.model("hubert").capabilities, forbid={"human_judges", "fine_tuning"})
    [m.key for m in res.fits]                      # evaluations a HuBERT-like encoder can take
    gaps(tax).thin                                 # the thinly covered aspects

Names are imported on first use, so that ``import speech_taxonomy`` (and the command line) starts fast.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "load": "catalogue",
    "check": "catalogue",
    "load_json": "catalogue",
    "from_dict": "catalogue",
    "default_data_dir": "catalogue",
    "Taxonomy": "catalogue",
    "CatalogueError": "catalogue",
    "Problem": "catalogue",
    "Evaluation": "records",
    "ModelProfile": "records",
    "AxisValue": "records",
    "Citation": "records",
    "which": "match",
    "assess": "match",
    "gaps": "match",
    "coverage_matrix": "match",
    "WhichResult": "match",
    "Match": "match",
    "GapReport": "match",
    "to_markdown": "export",
    "to_csv": "export",
    "read_csv": "export",
    "to_json": "export",
    "heatmap_png": "export",
    "to_html": "page",
    "add_entry": "add",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
