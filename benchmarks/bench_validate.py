"""Measure the commands against the cost of just reading the same files, at the same parallelism.

    python benchmarks/bench_validate.py --n 1000 [--rounds 3] [--cases validate_w1,validate_w2,...]
                                        [--json-out FILE] [--keep DIR] [--convert-n 200] [--error-share 0.05]

Generates N filled workbooks with the project's own template (both formats, a share of them, 5 % by
default, with a deliberate error, messy cell values, Chinese file names; with a `previous` case also last year's report of every
office beside the batch), then measures, over paired rounds:

  floor_1, floor_2   the floor: open every file and read all its cell values with python-calamine,
                     nothing else, in 1 process / in 2 forked processes (a multiprocessing pool);
  validate_w1        `validate DIR --json --workers 1`, paired with floor_1;
  validate_w2        `validate DIR --json --workers 2`, paired with floor_2;
  out_w2             `validate DIR --json --out OUT --workers 2` (annotated copies, summaries, overview),
                     paired with validate_w2;
  previous_w2        `validate DIR --json --previous PREV --workers 2`, paired with validate_w2;
  aggregate_w2       `aggregate DIR -o total.xlsx --year Y --workers 2`, paired with floor_2;
  convert_w2         `convert SUB --out OUT --workers 2` on the first --convert-n workbooks, paired with
                     floor_2 of the same files;
  startup            `--help`, `template -o`, and `validate ONE.xlsx` start to end (5 runs each).

Every command runs as a subprocess of this script, which makes itself the "subreaper" of everything the
command starts (Linux prctl), so that worker processes left behind are reaped here and their CPU time
counted. Each measurement is:

  wall        seconds, start to exit;
  cpu         user + system seconds of the whole process tree (the command, its workers, and workers
              reaped after it exited): much less disturbed by a shared machine than wall time;
  tree_pss    the peak, over samples every 20 ms, of the summed proportional set size (PSS,
              /proc/PID/smaps_rollup) of the command and all its descendants: the memory the tree
              really holds (pages a forked worker shares with its parent counted once, split between
              them);
  tree_rss    the same peak of summed resident set sizes, an upper bound (shared pages counted in
              every process that maps them);
  max_rss     the largest single process (the command or one worker: getrusage's maxrss of the
              processes reaped).

Before each run every input file is read once, unmeasured (`_warm`): each run reads from the page cache.
A pair is measured back to back, in alternating order from round to round, and its ratio taken within
the round; reported are the median and the min–max over rounds of each figure and each ratio. Every
figure goes to a JSON file. No figure is asserted anywhere. The machine this project runs on has 2
cores shared with other work: read the min–max.

Run it with the tree to measure first on the path (`PYTHONPATH=/path/to/tree`); the commands run as
`python -m disclosure_xlsx` in a temporary folder (in a checkout, `-m` would take the checkout's package
first, whatever the path says), and the JSON names the package measured (`package`). The outputs
(`--out`, `convert`, `aggregate`) go to a temporary folder under
TMPDIR. On this project's machine creating a folder and a file in it took 0.05–0.8 ms of CPU within one
hour, on /tmp and on /work alike (2,000 of each, measured four times): `--out`, which creates two or three
files for every office, varies with it; reading does not.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOWNS = ["城关镇", "东城街道", "西湖乡", "南山镇", "北塘镇", "新安街道", "石门乡", "白沙镇", "青山镇", "河口乡"]
OFFICES = ["人民政府", "审计局", "财政局", "教育局", "自然资源局", "卫生健康局", "住房和城乡建设局", "交通运输局"]
MESSY = ["{}\u00a0", "\u00a0{}", "{} ", "{}件"]  # as offices type or paste them (spec §9–§11)
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
# Sentences of section 五 as offices write them; each office's text is its own draw of some of them.
PROBLEMS = ["主动公开的深度和广度有待加强", "部分栏目更新不够及时", "政策解读形式较为单一", "图解、视频等解读方式运用不多",
            "依申请公开答复的规范性有待提高", "工作人员业务能力需要进一步提升", "基层政务公开标准化建设推进不平衡",
            "公开目录维护还停留在被动更新", "答复文书说理不够充分", "政务新媒体互动回应不够及时",
            "下一步将加强业务培训", "完善信息发布审核机制", "建立答复文书集体审核制度", "按月通报栏目更新情况",
            "把公开工作纳入年度考核", "丰富政策解读形式", "加强政务公开平台建设", "健全政府信息管理制度"]
# Sentences of section 一 (no figures: a figure would be checked against the table, and this text is drawn
# at random); a pasted report's overview is its own draw of them (~600 characters; the seed's has 796).
OVERVIEW = ["本机关坚持以习近平新时代中国特色社会主义思想为指导", "认真贯彻落实《中华人民共和国政府信息公开条例》",
            "围绕中心工作深入推进决策、执行、管理、服务、结果公开", "进一步规范依申请公开办理流程",
            "严格落实公开属性源头认定制度", "做好重点领域信息公开工作", "及时发布财政预决算和重大建设项目信息",
            "加强政策解读和回应关切", "推动政府网站和政务新媒体规范运行", "扎实做好政府信息公开平台建设",
            "持续开展政务公开业务培训", "强化监督保障和考核评议", "不断提升政务公开工作质量和实效",
            "畅通群众意见建议反映渠道", "依法保障人民群众知情权、参与权、表达权和监督权"]
CASES = ("validate_w1", "validate_w2", "out_w2", "previous_w2", "aggregate_w2", "convert_w2", "startup")
SAMPLE_SECONDS = 0.02


# ----------------------------------------------------------------------------------------------
# The batch


def _problems(rng: random.Random, office: str) -> str:
    parts = rng.sample(PROBLEMS, rng.randint(6, 10))
    return f"{office}政府信息公开工作仍存在一些不足：" + "；".join(parts) + "。"


def _pasted(rng: random.Random, fmt: Any, office: str, values: dict[str, object]) -> None:
    """A report whose tables were pasted from the office's web page, as the seed's were: every count with a
    no-break space (~190 cells; the seed has 131), its contacts filled and its narratives written (sections
    一, 五 and 六: ~600, ~120 and 12 characters; the seed's 796, 242 and 15)."""
    for cid, cell in fmt.cells.items():
        if cell.type.key == "count" and isinstance(values.get(cid), int):
            values[cid] = f"{values[cid]}\u00a0" if rng.random() < 0.6 else f"\u00a0{values[cid]}"
    sentences = [f"{office}{s}" if k % 4 == 0 else s for k, s in enumerate(rng.sample(OVERVIEW, len(OVERVIEW)))]
    contacts = {"contact": "办公室", "phone": f"0574-{rng.randint(10**7, 10**8 - 1)}", "fax": f"0574-{rng.randint(10**7, 10**8 - 1)}",
                "email": f"xxgk{rng.randint(100, 999)}@example.gov.cn", "address": f"{office}政务服务中心",
                "postcode": f"{rng.randint(310000, 329999)}"}
    narratives = {"overview": "，".join(sentences) + "。" + "；".join(sentences[::-1]) + "。",
                  "problems": _problems(rng, office), "other": "本年度未收取信息处理费。"}
    values.update({fmt.field(role).name: text for role, text in contacts.items()})
    values.update({fmt.narrative(role).name: text for role, text in narratives.items()})


def make_workbook(job: tuple[int, str, str | None, float, float]) -> str:
    """One filled workbook of realistic variety (and, with a previous folder, the office's report for the
    year before, which the current one follows from); returns its path. A share `pasted_share` of them
    (their own random draw, so the other workbooks stay as they were) is pasted from a web page (`_pasted`)."""
    from disclosure_xlsx.formats import all_formats, format_for_year, get_format
    from disclosure_xlsx.synthetic import balanced_report, balanced_successor
    from disclosure_xlsx.template import write_template

    index, folder, previous, error_share, pasted_share = job
    rng = random.Random(index)
    format_id = list(all_formats())[index % 2]
    fmt = get_format(format_id)
    values: dict[str, object] = dict(balanced_report(format_id, rng, zero_share=0.6, maximum=30))
    office = f"{TOWNS[index % len(TOWNS)]}{OFFICES[(index // len(TOWNS)) % len(OFFICES)]}{index // 80 or ''}"
    if previous is not None:  # its own random source, so the batch without --previous stays as it was
        prng = random.Random(-1 - index)
        year = fmt.first_year + prng.randint(0, 1)
        last_fmt = format_for_year(year - 1) or fmt
        last: dict[str, object] = dict(balanced_report(last_fmt.id, prng, zero_share=0.6, maximum=30))
        last_text = _problems(prng, office)
        last.update(meta_office=office, meta_year=year - 1, meta_credit_code=f"1133{index:014d}",
                    text_problems=last_text)
        write_template(Path(previous) / f"{year - 1}年_{office}_{index:05d}.xlsx", last_fmt.id, values=last,
                       stamped=False)
        values = dict(balanced_successor(last, last_fmt.id, format_id, year, prng,  # type: ignore[arg-type]
                                         zero_share=0.6, maximum=30))
        values["text_problems"] = last_text if prng.random() < 0.1 else _problems(prng, office)
    counts = [c for c in fmt.cells.values() if c.type.key == "count"]
    for cell in rng.sample(counts, rng.randint(0, 12)):  # messy but readable: still balanced
        number = values[cell.id]
        pick = rng.random()
        values[cell.id] = str(number).translate(FULLWIDTH) if pick < 0.2 else rng.choice(MESSY).format(number)
    if rng.random() < error_share:  # a deliberate error
        identity = rng.choice(fmt.identities)
        anchor = values[identity.anchor]
        values[identity.anchor] = (anchor if isinstance(anchor, int) else 0) + 1
    if previous is None:
        year = fmt.first_year + rng.randint(0, 1)
    pasting = random.Random(f"pasted-{index}")
    if pasting.random() < pasted_share:
        _pasted(pasting, fmt, office, values)
    values.update(meta_office=office, meta_year=year, meta_credit_code=f"1133{index:014d}")
    path = Path(folder) / f"{year}年_{office}_政府信息公开年报_{index:05d}.xlsx"
    # through xlsxwriter, with shared strings, as Excel and WPS save what an office returns (a stamped
    # template holds its texts as inline strings, which a county does not get back)
    write_template(path, format_id, values=values, stamped=False)
    return str(path)


def generate(n: int, folder: Path, workers: int, previous: Path | None = None, error_share: float = 0.05,
             pasted_share: float = 0.0) -> None:
    """N workbooks into `folder` (and last year's into `previous`), in `workers` processes."""
    from concurrent.futures import ProcessPoolExecutor

    folder.mkdir(parents=True, exist_ok=True)
    if previous is not None:
        previous.mkdir(parents=True, exist_ok=True)
    jobs = [(i, str(folder), str(previous) if previous else None, error_share, pasted_share) for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(make_workbook, jobs, chunksize=32))


# ----------------------------------------------------------------------------------------------
# The floor (run as `bench_validate.py --floor DIR --floor-workers K [--floor-limit N]`)


def _read_one(path: str) -> None:
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(path)
    for name in workbook.sheet_names:
        workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)


def floor_main(folder: Path, workers: int, limit: int | None) -> None:
    """Open every file and read all its cell values with python-calamine, nothing else."""
    files = sorted(str(p) for p in folder.glob("*.xlsx"))[:limit]
    if workers <= 1:
        for path in files:
            _read_one(path)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_read_one, files, chunksize=16):
            pass


# ----------------------------------------------------------------------------------------------
# Measuring one command: wall, CPU and memory of its whole process tree


@dataclass
class Run:
    wall: float
    cpu: float
    tree_pss_mib: float
    tree_rss_mib: float
    max_rss_mib: float
    code: int


def _become_subreaper() -> bool:
    """Orphaned descendants of our children are re-parented to us (Linux ≥ 3.4), so we can reap them and
    count their CPU time."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _memory(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB of one process; (0, 0) when it is gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop, self.pss, self.rss = pid, threading.Event(), 0, 0

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            pids = _descendants(self.pid) + [p for p in _descendants(me) if p not in (me, self.pid)]
            pss = rss = 0
            for pid in set(pids):
                p, r = _memory(pid)
                pss, rss = pss + p, rss + r
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self.stop.wait(SAMPLE_SECONDS)


def measure(args: list[str], *, stdout: Any = subprocess.DEVNULL) -> Run:
    """Run `args`; wall, tree CPU, tree memory. Exit codes 0 and 1 (findings) are results."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL)
    sampler = _Sampler(child.pid)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    cpu, max_rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # workers the command left behind, re-parented to us
        try:
            pid, _, orphan = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.01)
            continue
        cpu += orphan.ru_utime + orphan.ru_stime
        max_rss = max(max_rss, orphan.ru_maxrss)
    sampler.stop.set()
    sampler.join()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed with exit code {code}")
    return Run(wall, cpu, sampler.pss / 1024, sampler.rss / 1024, max_rss / 1024, code)


# ----------------------------------------------------------------------------------------------
# Cases and rounds


@dataclass
class Case:
    name: str
    command: list[str]
    baseline: str  # the case (or floor) it is paired with
    files: int  # workbooks it reads
    outputs: tuple[Path, ...] = ()  # what a run writes, removed after it
    runs: list[Run] = field(default_factory=list)
    ratios: list[tuple[float, float]] = field(default_factory=list)  # (wall, cpu) against the baseline


def _spread(values: list[float], digits: int = 3) -> dict[str, Any]:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "rounds": [round(v, digits) for v in values]}


def _figures(case: Case) -> dict[str, Any]:
    runs = case.runs
    out: dict[str, Any] = {
        "command": [Path(a).name if os.sep in a else a for a in case.command], "paired_with": case.baseline,
        "workbooks": case.files,
        "wall_s": _spread([r.wall for r in runs]), "cpu_s": _spread([r.cpu for r in runs]),
        "ms_per_workbook": {"wall": round(1000 * statistics.median(r.wall for r in runs) / case.files, 3),
                            "cpu": round(1000 * statistics.median(r.cpu for r in runs) / case.files, 3)},
        "peak_tree_pss_mib": round(max(r.tree_pss_mib for r in runs), 1),
        "peak_tree_rss_mib": round(max(r.tree_rss_mib for r in runs), 1),
        "max_process_rss_mib": round(max(r.max_rss_mib for r in runs), 1),
    }
    if case.ratios:
        out["ratio_wall"] = _spread([w for w, _ in case.ratios], 2)
        out["ratio_cpu"] = _spread([c for _, c in case.ratios], 2)
    return out


def _warm(folders: list[Path]) -> None:
    """Read every input file once, unmeasured, so that each run reads from the page cache: on this
    project's machine the first read of 20,000 workbooks (471 MB) after other work took 51 s and the next
    0.7 s, and a run that met a cold cache measured the disk, not the command."""
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                with path.open("rb") as f:
                    while f.read(1 << 20):
                        pass


def _pair(first: Case, second: Case, round_: int, results: dict[str, Run], inputs: list[Path]) -> None:
    """Measure `second` against `first` back to back, the order alternating by round; each run of a case
    within a round is measured once and reused by the other pairs of that round, each after `_warm`."""
    order = (first, second) if round_ % 2 == 0 else (second, first)
    for case in order:
        if case.name not in results:
            _warm(inputs)
            results[case.name] = measure(case.command)
            case.runs.append(results[case.name])
            for path in case.outputs:  # each run starts from nothing (an --out folder would be a new round)
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    base, run = results[first.name], results[second.name]
    second.ratios.append((run.wall / base.wall, run.cpu / base.cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="workbooks to generate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--convert-n", type=int, default=200, help="workbooks the convert case writes")
    parser.add_argument("--error-share", type=float, default=0.05,
                        help="share of generated workbooks given a deliberate error (a total off by one)")
    parser.add_argument("--pasted-share", type=float, default=0.0,
                        help="share of generated workbooks pasted from a web page, as the seed: a no-break space in "
                             "every count, contacts and narratives filled")
    parser.add_argument("--json-out", type=Path, default=Path("benchmarks") / "results.json")
    parser.add_argument("--keep", type=Path, default=None, help="generate into (and keep) this folder")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)  # internal: run the floor
    parser.add_argument("--floor-workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--floor-limit", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor is not None:
        floor_main(args.floor, args.floor_workers, args.floor_limit)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    subreaper = _become_subreaper()

    tool = [sys.executable, "-m", "disclosure_xlsx"]
    base = Path(tempfile.mkdtemp(prefix="bench-"))
    folder = args.keep.resolve() if args.keep else base / "in"
    args.json_out = args.json_out.resolve()
    if os.environ.get("PYTHONPATH"):  # the commands run elsewhere: a relative entry would point elsewhere too
        entries = os.environ["PYTHONPATH"].split(os.pathsep)
        os.environ["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    os.chdir(base)  # `python -m` puts the working folder first on the path: never a checkout measured unasked
    package = subprocess.run([sys.executable, "-c", "import disclosure_xlsx; print(disclosure_xlsx.__file__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"measuring {Path(package).parent}", flush=True)
    previous = folder.parent / f"{folder.name}-previous" if "previous_w2" in cases else None  # beside, not inside
    cores = os.cpu_count() or 1
    if len(list(folder.glob("*.xlsx"))) < args.n or (previous is not None and not any(previous.glob("*.xlsx"))):
        start = time.perf_counter()
        generate(args.n, folder, cores, previous, args.error_share, args.pasted_share)
        generated_share: float | None = args.error_share
        pasted_share: float | None = args.pasted_share
        print(f"generated {args.n} workbooks in {time.perf_counter() - start:.1f} s", flush=True)
    else:
        generated_share = pasted_share = None  # a kept folder: generated by an earlier run, with its own shares
    n = len(list(folder.glob("*.xlsx")))
    convert_n = min(args.convert_n, n)
    sub = base / "convert-in"
    if "convert_w2" in cases:
        sub.mkdir()
        for path in sorted(folder.glob("*.xlsx"))[:convert_n]:
            os.symlink(path, sub / path.name)
    me = [sys.executable, str(Path(__file__).resolve())]
    aggregate_year = 2021

    def floor(k: int, where: Path = folder, count: int = n) -> Case:
        return Case(f"floor_{k}" + ("" if where == folder else "_convert"),
                    [*me, "--floor", str(where), "--floor-workers", str(k)], "", count)

    floor_1, floor_2, floor_2c = floor(1), floor(2), floor(2, sub, convert_n)
    validate_1 = Case("validate_w1", [*tool, "validate", str(folder), "--json", "--workers", "1"], "floor_1", n)
    validate_2 = Case("validate_w2", [*tool, "validate", str(folder), "--json", "--workers", "2"], "floor_2", n)
    out_2 = Case("out_w2", [*tool, "validate", str(folder), "--json", "--out", str(base / "out"), "--workers", "2"],
                 "validate_w2", n, (base / "out",))
    previous_2 = Case("previous_w2", [*tool, "validate", str(folder), "--json", "--previous", str(previous),
                                      "--workers", "2"], "validate_w2", n)
    aggregate_2 = Case("aggregate_w2", [*tool, "aggregate", str(folder), "-o", str(base / "total.xlsx"), "--force",
                                        "--office", "示例县", "--year", str(aggregate_year), "--workers", "2"],
                       "floor_2", n, (base / "total.xlsx",))
    convert_2 = Case("convert_w2", [*tool, "convert", str(sub), "--out", str(base / "converted"), "--force",
                                    "--workers", "2"], "floor_2_convert", convert_n,
                     (base / "converted",))
    pairs = {"validate_w1": [(floor_1, validate_1)], "validate_w2": [(floor_2, validate_2)],
             "out_w2": [(floor_2, validate_2), (validate_2, out_2)],
             "previous_w2": [(floor_2, validate_2), (validate_2, previous_2)],
             "aggregate_w2": [(floor_2, aggregate_2)], "convert_w2": [(floor_2c, convert_2)]}
    chosen: list[tuple[Case, Case]] = []
    for name in cases:
        chosen += [pair for pair in pairs.get(name, []) if pair not in chosen]
    measured = {c.name: c for pair in chosen for c in pair}
    load = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        results: dict[str, Run] = {}
        for first, second in chosen:
            _pair(first, second, round_, results, [p for p in (folder, previous) if p is not None])
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {r.wall:.2f} s (cpu {r.cpu:.2f})" for k, r in results.items()),
              flush=True)
        load.append(os.getloadavg()[0])

    figures: dict[str, Any] = {
        "n": n, "rounds": args.rounds, "cores": cores, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_1min": [round(x, 2) for x in load],
        "orphans_reaped": subreaper, "error_share_generated": generated_share,
        "pasted_share_generated": pasted_share,
        "package": str(Path(package).parent),
        "cases": {name: _figures(case) for name, case in measured.items()},
    }
    if "convert_w2" in measured:
        figures["cases"]["convert_w2"]["ms_per_workbook_beyond_floor"] = {
            k: round(figures["cases"]["convert_w2"]["ms_per_workbook"][k]
                     - figures["cases"]["floor_2_convert"]["ms_per_workbook"][k], 3) for k in ("wall", "cpu")}
    for name in ("validate_w1", "validate_w2"):
        if name in measured:
            floor_case = figures["cases"][measured[name].baseline]
            figures["cases"][name]["cpu_ms_per_workbook_beyond_floor"] = round(
                figures["cases"][name]["ms_per_workbook"]["cpu"] - floor_case["ms_per_workbook"]["cpu"], 3)
    if "validate_w2" in measured:
        report = _report_shares(tool, folder)
        figures["batch"] = report
    if "startup" in cases:
        one = sorted(folder.glob("*.xlsx"))[0]
        startup: dict[str, list[Run]] = {"help": [], "template": [], "validate_one": []}
        for i in range(5):
            startup["help"].append(measure([*tool, "--help"]))
            startup["template"].append(measure([*tool, "template", "-o", str(base / f"t{i}.xlsx")]))
            startup["validate_one"].append(measure([*tool, "validate", str(one)]))
        figures["startup"] = {k: {"wall_s": _spread([r.wall for r in v]), "cpu_s": _spread([r.cpu for r in v]),
                                  "peak_tree_pss_mib": round(max(r.tree_pss_mib for r in v), 1)}
                              for k, v in startup.items()}
    print(json.dumps(_summary(figures), ensure_ascii=False, indent=1))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", "utf-8")
    shutil.rmtree(base, ignore_errors=True)
    if previous is not None and args.keep is None:
        shutil.rmtree(previous, ignore_errors=True)


def _report_shares(tool: list[str], folder: Path) -> dict[str, Any]:
    """What the batch gives: how many workbooks have findings (the share `--out` annotates)."""
    with tempfile.TemporaryFile() as out:
        measure([*tool, "validate", str(folder), "--json", "--workers", "2"], stdout=out)
        out.seek(0)
        report = json.loads(out.read())
    workbooks = report["workbooks"]
    return {"summary": report["summary"],
            "with_findings": sum(bool(w["findings"]) for w in workbooks),
            "with_cleaning_records": sum(bool(w["cleaning"]) for w in workbooks)}


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": figures["n"]}
    for name, case in figures["cases"].items():
        line = f"wall {case['wall_s']['median']} s, cpu {case['cpu_s']['median']} s, pss {case['peak_tree_pss_mib']} MiB"
        if "ratio_cpu" in case:
            line += (f"; vs {case['paired_with']}: wall ×{case['ratio_wall']['median']} "
                     f"({case['ratio_wall']['min']}–{case['ratio_wall']['max']}), cpu ×{case['ratio_cpu']['median']} "
                     f"({case['ratio_cpu']['min']}–{case['ratio_cpu']['max']})")
        out[name] = line
    if "startup" in figures:
        out["startup"] = {k: v["wall_s"]["median"] for k, v in figures["startup"].items()}
    return out


if __name__ == "__main__":
    main()
