"""Pandera, imported as a production install sees it.

Pandera's data-synthesis module imports hypothesis when hypothesis is installed, the first time a schema
validates (~0.6 s, and pytest and trio with it). hypothesis is a test-only dependency of this project, so
an installed tool never has it; on a development machine it would still be imported by every `validate`.
Pandera is imported here with hypothesis hidden, exactly as without it (pandera then marks its strategies
unavailable; this project never uses them). If hypothesis is already imported (the test suite), nothing
is hidden.
"""

from __future__ import annotations

import sys

_HIDE = "hypothesis" not in sys.modules
if _HIDE:
    sys.modules["hypothesis"] = None  # type: ignore[assignment]  # import hypothesis → ImportError
try:
    import pandera.backends.pandas.builtin_checks  # noqa: F401  # imports pandera.strategies, now
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors
finally:
    if _HIDE and sys.modules.get("hypothesis", 0) is None:
        del sys.modules["hypothesis"]

__all__ = ["SchemaErrors", "pa"]
