"""disclosure_xlsx: templates, validation and roll-up of 政府信息公开工作年度报告 workbooks.

Both national report formats live as data in `data/formats.toml`; every part of the package
(template writer, reader, cleaner, validator, report sheet, aggregator) derives from it. The main
calls are importable from here; they load their heavy libraries only when first used, so importing
the package stays fast::

    import disclosure_xlsx as dx
    batch = dx.validate_paths(["交回的报表/"])
    result = dx.validate_workbook(data, name="某镇.xlsx")   # bytes or a path
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# name → module that defines it; resolved on first use (PEP 562)
_EXPORTS = {
    "validate_paths": "pipeline", "validate_workbook": "pipeline", "BatchResult": "pipeline",
    "WorkbookResult": "pipeline", "convert_paths": "convert", "aggregate_paths": "aggregate", "RollUp": "aggregate",
    "publish_paths": "publish",
    "write_template": "template", "get_format": "formats", "all_formats": "formats", "current_format": "formats",
    "format_for_year": "formats", "Format": "formats", "Finding": "catalog", "DisclosureError": "catalog",
    "write_outputs": "feedback", "serve": "web", "create_app": "web", "Workspace": "workspace",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
