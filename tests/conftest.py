"""Shared paths and helpers: real workbooks are written to disk and opened again with real readers."""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import openpyxl
import pytest
import scipy.optimize  # noqa: F401  # loaded once: the workers every test forks inherit it (a county's
#                      # run loads it once in each worker whose workbook needs the solver)
from openpyxl.cell.cell import MergedCell
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
from openpyxl.worksheet.worksheet import Worksheet

from disclosure_xlsx.formats import all_formats

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_workbooks"
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
FORMAT_IDS = list(all_formats())


def _merged_without_edge_borders(ws: Worksheet, merged: object) -> None:
    """openpyxl's loading of a merged range, less the edge borders it derives for the covered cells.

    openpyxl (3.1) turns every covered cell of a merged range into a `MergedCell` and then gives the ones on
    its edges the top-left cell's borders (`MergedCellRange.format`), one style lookup per cell: over half of
    the time the tests spend loading the tool's outputs (their report sheets are mostly merged ranges),
    ~12 s of CPU a run. Those borders are openpyxl's own rendering of the top-left cell's, which every test
    still reads, and no test reads them; the covered cells, their locking (copied from the top-left cell as
    openpyxl does) and every value, format, fill and comment load as before."""
    cells = merged.cells  # type: ignore[attr-defined]
    next(cells)  # the top-left cell keeps what the file gave it
    start = merged.start_cell._style  # type: ignore[attr-defined]
    protection = start.protectionId if start is not None else 0
    for row, col in cells:
        cell = MergedCell(ws, row, col)
        if protection:
            cell._style = StyleArray()
            cell._style.protectionId = protection
        ws._cells[row, col] = cell


assert hasattr(Worksheet, "_clean_merge_range"), "openpyxl changed: review _merged_without_edge_borders"
Worksheet._clean_merge_range = _merged_without_edge_borders  # type: ignore[method-assign]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the expected dumps under tests/golden/ instead of comparing with them")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soffice: needs LibreOffice (soffice) on PATH")
    config.addinivalue_line("markers", "slow: a benchmark-sized run; CI runs it separately (-m slow)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share a module's fixture (a batch validated, files written and printed) run in the same
    xdist process (`--dist loadgroup` in pyproject.toml), so the fixture is built once, not once per process.
    First among the hooks: xdist reads the marks in its own hook, which otherwise runs before this one."""
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        shared = sorted({d.baseid for name in getattr(item, "fixturenames", ())
                         for d in (definitions.name2fixturedefs.get(name, ()) if definitions else ())
                         if d.scope == "module"})
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (every test module, the package, pandas, hypothesis's strategies: ~200,000
    objects a test process) lives as long as the process: frozen, the collector no longer walks it again
    in each full collection (~25 a process, ~0.14 s each), and the workers the tests fork leave its
    pages shared (the gc.freeze advice for processes that fork)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True with `pytest --update-golden`: golden tests write their expectation instead of checking it."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(params=FORMAT_IDS)
def format_id(request: pytest.FixtureRequest) -> str:
    """Every test that takes `format_id` runs once per report format."""
    return str(request.param)


def merged_text(ws: Worksheet, row: int, col: int) -> object:
    """The value a reader sees at a 1-based cell, looking through merged ranges to their top-left."""
    for rng in ws.merged_cells.ranges:
        if rng.min_row <= row <= rng.max_row and rng.min_col <= col <= rng.max_col:
            return ws.cell(rng.min_row, rng.min_col).value
    return ws.cell(row, col).value


def defined_cells(wb: openpyxl.Workbook) -> dict[str, tuple[str, str]]:
    """Workbook-level defined name → (sheet title, A1 address without $)."""
    out = {}
    for name, dn in wb.defined_names.items():
        (sheet, ref), = list(dn.destinations)
        out[name] = (sheet, ref.replace("$", ""))
    return out


def rc(ref: str) -> tuple[int, int]:
    col, row = coordinate_from_string(ref)
    return row, column_index_from_string(col)


def labels_around(ws, row: int, col: int, row_header: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The row and column labels a reader sees around a cell: locked text to its left and above it."""
    def add(seq: list[str], text: object) -> None:
        if isinstance(text, str) and text and (not seq or seq[-1] != text):
            seq.append(text)

    row_path: list[str] = []
    for k in range(1, col):
        if ws.cell(row, k).protection.locked:
            add(row_path, merged_text(ws, row, k))
    col_path: list[str] = []
    r = row - 1
    while r >= 1:
        if not ws.cell(r, col).protection.locked:  # another data row of the same block
            r -= 1
            continue
        text = merged_text(ws, r, col)
        if text in (None, ""):
            break
        if row_header and merged_text(ws, r, 1) == row_header:  # section 二: header row, caption above
            add(col_path, text)
            row_path.insert(0, str(merged_text(ws, r - 1, 1)))
            break
        add(col_path, text)
        r -= 1
    return tuple(row_path), tuple(reversed(col_path))


def hang_forever() -> None:
    """A job that never returns, as a reader stuck on a file would. It sleeps rather than spins: the pool's
    timeout is wall-clock time either way, and a spinning hang would only take a core from the tests
    running beside it."""
    while True:
        time.sleep(60)


A1 = re.compile(r"(?<![A-Za-z_])\$?([A-Z]{1,3})\$?([0-9]+)(?![0-9A-Za-z_(])")


SOFFICE = shutil.which("soffice")
needs_soffice = pytest.mark.skipif(
    SOFFICE is None, reason="LibreOffice (soffice) is not installed; `apt-get install libreoffice-calc` runs these")

# A LibreOffice profile that recalculates every formula on load (by default it keeps cached values).
_RECALC_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


# Debian's python3-uno serves the system python3 only; with it, each test process keeps one LibreOffice per
# profile running and hands it the files (tests/libreoffice_uno.py), instead of starting one per conversion.
_UNO_PYTHON = "/usr/bin/python3"
_UNO_SCRIPT = Path(__file__).resolve().parent / "libreoffice_uno.py"


def _uno_works() -> bool:
    if not Path(_UNO_PYTHON).exists():
        return False
    return subprocess.run([_UNO_PYTHON, "-c", "import uno"], capture_output=True).returncode == 0


class _LibreOffice:
    """One headless LibreOffice on one profile, started on first use, converting files as --convert-to does."""

    def __init__(self, profile: Path, pipe: str, uno: bool) -> None:
        self.profile, self.pipe, self.uno = profile, pipe, uno
        self.process: subprocess.Popen[bytes] | None = None

    def convert(self, files: list[Path], to: str, outdir: Path) -> None:
        if not self.uno:
            subprocess.run([SOFFICE, f"-env:UserInstallation={self.profile.as_uri()}", "--headless",
                            "--convert-to", to, "--outdir", str(outdir), *map(str, files)],
                           check=True, capture_output=True, timeout=180)
            return
        for attempt in (1, 2):
            if self.process is None or self.process.poll() is not None:
                self._start()
            done = subprocess.run([_UNO_PYTHON, str(_UNO_SCRIPT), self.pipe, to, str(outdir), *map(str, files)],
                                  capture_output=True, text=True, timeout=180)
            if done.returncode == 0:
                return
            self.stop()  # a LibreOffice that failed a job is not trusted with the next one
            # 3: LibreOffice did not answer; below 0: the bridge process died of a signal, with nothing on
            # stderr (seen once in a full run, not alone). Both are the office's state, not the file's: retry.
            unanswered = done.returncode == 3 or done.returncode < 0
            if not unanswered or attempt == 2:
                raise AssertionError(f"LibreOffice did not convert {files} to {to} (exit {done.returncode}): "
                                     f"{done.stderr[-2000:]}")

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [SOFFICE, f"-env:UserInstallation={self.profile.as_uri()}", "--headless", "--invisible", "--nologo",
             "--norestore", "--nodefault", "--nolockcheck", f"--accept=pipe,name={self.pipe};urp;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None


@pytest.fixture(scope="session")
def soffice(tmp_path_factory: pytest.TempPathFactory):
    """Convert files with headless LibreOffice, as an office using it would save them.

    Returns a function `convert(files, to, outdir, recalc=False) -> list[Path]`; `to` is an extension
    (xlsx, xls, ods, pdf) or soffice's `pdf:FILTER:OPTIONS`. Each test process uses its own profiles, so
    parallel runs do not collide, and keeps one LibreOffice running for each.
    """
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed; `apt-get install libreoffice-calc` runs these")
    uno = _uno_works()
    offices = {}
    for recalc in (False, True):
        profile = tmp_path_factory.mktemp("lo-recalc" if recalc else "lo-profile")
        if recalc:
            (profile / "user").mkdir()
            (profile / "user" / "registrymodifications.xcu").write_text(_RECALC_PROFILE, "utf-8")
        offices[recalc] = _LibreOffice(profile, f"disclosure_xlsx_{os.getpid()}_{int(recalc)}", uno)

    def convert(files: list[Path], to: str, outdir: Path, recalc: bool = False) -> list[Path]:
        outdir.mkdir(parents=True, exist_ok=True)
        offices[recalc].convert(files, to, outdir)
        out = [outdir / f"{Path(f).stem}.{to.split(':')[0]}" for f in files]
        missing = [p for p in out if not p.exists()]
        assert not missing, f"LibreOffice did not write {missing}"
        return out

    yield convert
    for office in offices.values():
        office.stop()


def batch_of(format_id: str, offices, year: int):
    """A validated batch built in memory from (values, office name) pairs, as if each were read from the
    standard workbook: for properties that need many batches and no files."""
    from disclosure_xlsx.clean import clean_report
    from disclosure_xlsx.formats import get_format
    from disclosure_xlsx.layout import standard_where
    from disclosure_xlsx.pipeline import Checked, validate_checked
    from disclosure_xlsx.read import RawReport

    fmt = get_format(format_id)
    reports = []
    for i, (values, office) in enumerate(offices):
        raw = {cid: (float(v) if v is not None else "") for cid, v in values.items()}
        raw.update({fmt.field("office").name: office, fmt.field("year").name: float(year),
                    fmt.words.version_name: fmt.template_version})
        reports.append(clean_report(RawReport(f"memory/{i}.xlsx", fmt, "names", raw, standard_where(format_id))))
    return validate_checked([Checked(r.file, r) for r in reports])
