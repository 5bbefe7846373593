"""Make tests/data/vbaProject.bin: a real VBA project, written by LibreOffice's own VBA exporter.

The annotated-copy tests need a macro workbook. xlsxwriter can add a VBA project to an .xlsm but cannot
make one (it needs a vbaProject.bin). LibreOffice can: a Basic library in VBA-compatibility mode, with
one normal module, is exported as a genuine MS-OVBA project when the document is stored as .xlsm
("Calc MS Excel 2007 VBA XML"). This script runs that in a throw-away LibreOffice profile with a Basic
macro and extracts `xl/vbaProject.bin`. The module holds one harmless procedure, `DisclosureTestMacro`,
which the tests look for after LibreOffice reads the annotated copy back.

    python scripts/make_vba_project.py            # writes tests/data/vbaProject.bin
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "tests" / "data" / "vbaProject.bin"
MACRO = "DisclosureTestMacro"

BASIC = '''Sub MakeXlsm(target As String)
    Dim args(0) As New com.sun.star.beans.PropertyValue
    args(0).Name = "Hidden"
    args(0).Value = True
    doc = StarDesktop.loadComponentFromURL("private:factory/scalc", "_blank", 0, args())
    doc.Sheets.getByIndex(0).getCellByPosition(0, 0).setValue(1)
    libs = doc.BasicLibraries
    libs.VBACompatibilityMode = True
    libs.ProjectName = "VBAProject"
    If Not libs.hasByName("VBAProject") Then
        libs.createLibrary("VBAProject")
    End If
    vbaLib = libs.getByName("VBAProject")
    Dim info As New com.sun.star.script.ModuleInfo
    info.ModuleType = com.sun.star.script.ModuleType.NORMAL
    vbaLib.insertModuleInfo("Module1", info)
    vbaLib.insertByName("Module1", "Sub %s()" & Chr(10) & "    MsgBox ""hello""" & Chr(10) & "End Sub" & Chr(10))
    Dim store(0) As New com.sun.star.beans.PropertyValue
    store(0).Name = "FilterName"
    store(0).Value = "Calc MS Excel 2007 VBA XML"
    doc.storeToURL(ConvertToURL(target), store())
    doc.close(True)
End Sub

Sub Main
    MakeXlsm("%s")
    StarDesktop.terminate()
End Sub
'''


def main() -> int:
    soffice = shutil.which("soffice")
    if soffice is None:
        print("LibreOffice (soffice) is needed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        profile = (work / "profile").as_uri()
        xlsm = work / "made.xlsm"
        subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--terminate_after_init"],
                       capture_output=True, timeout=120, check=False)
        module = work / "profile" / "user" / "basic" / "Standard" / "Module1.xba"
        module.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE script:module PUBLIC '
                          '"-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">\n<script:module '
                          'xmlns:script="http://openoffice.org/2000/script" script:name="Module1" '
                          f'script:language="StarBasic">{escape(BASIC % (MACRO, xlsm))}</script:module>', "utf-8")
        subprocess.run([soffice, f"-env:UserInstallation={profile}", "--headless", "--invisible",
                        "macro:///Standard.Module1.Main"], capture_output=True, timeout=120, check=False)
        if not xlsm.exists():
            print("LibreOffice did not write the macro workbook", file=sys.stderr)
            return 1
        with zipfile.ZipFile(xlsm) as archive:
            TARGET.write_bytes(archive.read("xl/vbaProject.bin"))
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
