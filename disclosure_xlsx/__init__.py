"""disclosure_xlsx: templates, validation and roll-up of 政府信息公开工作年度报告 workbooks.

Both national report formats live as data in `data/formats.toml`; every part of the package
(template writer, reader, cleaner, validator, report sheet, aggregator) derives from it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
