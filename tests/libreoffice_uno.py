"""Convert files through a LibreOffice that keeps running, as `soffice --convert-to` would convert them.

Run by the system python3, the one Debian's python3-uno serves (the tests' own interpreter cannot import
`uno`). Starting LibreOffice costs about a second of CPU, and the suite converts some twenty times in each
test process, so conftest.py starts one LibreOffice per profile and process and this script hands it the
files. The export filters are the ones `--convert-to` picks for the same extension.

    python3 libreoffice_uno.py PIPE_NAME TO OUTDIR FILE...

TO is an extension (xlsx, xlsm, xls, ods, pdf), or `pdf:FILTER:JSON` as on soffice's command line.
Exit 0: every file was written; exit 3: LibreOffice did not answer (conftest.py then starts it again).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import uno
from com.sun.star.beans import PropertyValue

# What `soffice --convert-to EXT` picks for a spreadsheet and for a text document.
FILTERS = {
    "calc": {"xlsx": "Calc MS Excel 2007 XML", "xlsm": "Calc MS Excel 2007 VBA XML", "xls": "MS Excel 97",
             "ods": "calc8", "pdf": "calc_pdf_Export"},
    "writer": {"pdf": "writer_pdf_Export", "docx": "MS Word 2007 XML", "odt": "writer8"},
}
_TYPES = {"string": str, "boolean": lambda v: str(v).lower() == "true", "long": int}


def _props(**values: object) -> tuple[PropertyValue, ...]:
    out = []
    for name, value in values.items():
        prop = PropertyValue()
        prop.Name, prop.Value = name, value
        out.append(prop)
    return tuple(out)


def _desktop(pipe: str, wait: float):
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + wait
    while True:
        try:
            context = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            break
        except Exception:
            if time.monotonic() > deadline:
                sys.exit(3)
            time.sleep(0.1)
    return context.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", context)


def _filter(document, to: str) -> tuple[str, str, tuple[PropertyValue, ...]]:
    """The output extension, filter name and filter data for `to`."""
    ext, _, rest = to.partition(":")
    name, _, options = rest.partition(":")
    kind = "calc" if document.supportsService("com.sun.star.sheet.SpreadsheetDocument") else "writer"
    data = json.loads(options) if options else {}
    return ext, name or FILTERS[kind][ext], _props(**{k: _TYPES[v["type"]](v["value"]) for k, v in data.items()})


def main(pipe: str, to: str, outdir: str, files: list[str]) -> None:
    desktop = _desktop(pipe, wait=60)
    for file in files:
        source = Path(file).resolve()
        # Read-only: no lock file beside the source, so two test processes may open the same sample at once
        # (the second LibreOffice refused a file the first had locked).
        document = desktop.loadComponentFromURL(source.as_uri(), "_blank", 0, _props(Hidden=True, ReadOnly=True))
        if document is None:
            sys.exit(f"LibreOffice could not open {source}")
        try:
            ext, name, data = _filter(document, to)
            target = Path(outdir).resolve() / f"{source.stem}.{ext}"
            extra = {"FilterData": uno.Any("[]com.sun.star.beans.PropertyValue", data)} if data else {}
            uno.invoke(document, "storeToURL", (target.as_uri(), _props(FilterName=name, Overwrite=True, **extra)))
        finally:
            document.close(True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
