"""Measure how fast `disclosure-xlsx serve` starts and shows its first page, as a clerk starts it.

    python benchmarks/bench_serve.py [--rounds 7] [--out benchmarks/results-serve.json]

Each round starts the command in a fresh process (`python -m disclosure_xlsx serve --no-browser --port 0`)
and measures, from the moment the process is started:

  address     until it prints the address with the token (the port listens from then on);
  first page  until the first page has arrived, the way a browser gets it: the address with the token
              (303 and a cookie), then the page itself;
  cpu         the CPU time the server process had used by then (a busy machine disturbs it far less);

once on an empty working folder, and once on one whose year holds the ten sample workbooks, validated
(the page then reads report.json and lays out every office). Medians, minima and maxima are added to the
runs of the JSON file, with the machine's load average before and after (it is shared); nothing is
asserted. Validating the samples is done once, beforehand, through the same command's API.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_workbooks"
YEAR = 2024


def _start(workdir: Path) -> tuple[subprocess.Popen[str], float, int, str]:
    begin = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "disclosure_xlsx", "serve", "--no-browser", "--workdir",
                                str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               cwd=ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", line)
    assert found, line
    return process, begin, int(found.group(1)), found.group(2)


def _get(port: int, path: str, cookie: str | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def _round(workdir: Path) -> dict[str, float]:
    process, begin, port, token = _start(workdir)
    address = time.perf_counter() - begin
    first = _get(port, f"/?year={YEAR}&token={token}")
    assert first.status == 303
    cookie = first.getheader("set-cookie", "").split(";")[0]
    page = _get(port, f"/?year={YEAR}", cookie)
    assert page.status == 200
    shown = time.perf_counter() - begin
    cpu = _cpu(process.pid)
    process.terminate()
    process.wait(30)
    return {"address": address, "first_page": shown, "cpu": cpu}


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far: less disturbed by a busy machine than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fill(workdir: Path) -> None:
    """The samples validated into YEAR, through POST /api/validate of a server that then stops."""
    process, _, port, token = _start(workdir)
    boundary = secrets.token_hex(8)
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{p.name}"\r\n\r\n'
                    .encode() + p.read_bytes() + b"\r\n" for p in sorted(SAMPLES.glob("*.xlsx")))
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="year"\r\n\r\n{YEAR}\r\n--{boundary}--\r\n'.encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("POST", f"/api/validate?token={token}", body=body,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert connection.getresponse().status == 200
    process.terminate()
    process.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results-serve.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                               "rounds": args.rounds, "load_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as folder:
        empty, filled = Path(folder) / "empty", Path(folder) / "filled"
        _fill(filled)
        for name, workdir in (("empty", empty), ("ten_samples", filled)):
            runs = [_round(workdir) for _ in range(args.rounds)]
            results[name] = {key: {"median": round(statistics.median(r[key] for r in runs), 3),
                                   "min": round(min(r[key] for r in runs), 3),
                                   "max": round(max(r[key] for r in runs), 3)} for key in ("address", "first_page", "cpu")}
            print(name, json.dumps(results[name]))
    results["load_after"] = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy it was
    kept = json.loads(args.out.read_text("utf-8")).get("runs", []) if args.out.exists() else []
    args.out.write_text(json.dumps({"runs": [*kept, results]}, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
