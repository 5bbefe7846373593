"""Golden files: what an office or a clerk sees in a workbook, as a normalised dump of every cell.

A dump is one entry per non-empty cell: its value (a formula as its text), number format, fill, font
colour, comment, merge and hyperlink; plus each sheet's print settings. It survives library upgrades
that change bytes but not what is shown, and a difference names the sheet and cell that changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openpyxl

GOLDEN = Path(__file__).resolve().parent / "golden"


def cell_dump(path: Path) -> dict[str, Any]:
    wb = openpyxl.load_workbook(path)  # formulas come back as their text
    out: dict[str, Any] = {}
    for ws in wb.worksheets:
        setup = ws.page_setup
        out[f"{ws.title}!"] = {"orientation": setup.orientation, "fit_width": setup.fitToWidth,
                               "print_titles": ws.print_title_rows, "merged": sorted(str(r) for r in ws.merged_cells.ranges),
                               "freeze": ws.freeze_panes, "state": ws.sheet_state}
        for row in ws.iter_rows():
            for c in row:
                if c.value is None and c.comment is None and not (c.fill and c.fill.fill_type):
                    continue
                entry: dict[str, Any] = {"value": c.value if not hasattr(c.value, "isoformat") else c.value.isoformat()}
                if c.number_format != "General":
                    entry["format"] = c.number_format
                if c.fill is not None and c.fill.fill_type:
                    entry["fill"] = c.fill.fgColor.rgb if isinstance(c.fill.fgColor.rgb, str) else "theme"
                if c.font is not None and c.font.color is not None and isinstance(c.font.color.rgb, str):
                    entry["color"] = c.font.color.rgb
                if c.comment is not None:
                    entry["comment"] = c.comment.text
                if c.hyperlink is not None:
                    entry["link"] = c.hyperlink.location or c.hyperlink.target
                out[f"{ws.title}!{c.coordinate}"] = entry
    return out


def check_golden(name: str, path: Path, update: bool) -> None:
    """Compare `path`'s dump with tests/golden/<name>.cells.json, or rewrite it with --update-golden."""
    dump = json.loads(json.dumps(cell_dump(path), ensure_ascii=False, default=str))
    golden = GOLDEN / f"{name}.cells.json"
    if update or not golden.exists():
        golden.write_text(json.dumps(dump, ensure_ascii=False, indent=1, sort_keys=True) + "\n", "utf-8")
        if not update:
            raise AssertionError(f"{golden.name} did not exist and was written; review and commit it")
        return
    expected = json.loads(golden.read_text("utf-8"))
    changed = [f"{key}: {expected.get(key)!r} → {dump.get(key)!r}" for key in sorted(set(expected) | set(dump))
               if expected.get(key) != dump.get(key)]
    assert not changed, (f"{len(changed)} cells of {name} differ from tests/golden/{golden.name} (run pytest "
                         f"--update-golden if intended):\n" + "\n".join(changed[:15]))
