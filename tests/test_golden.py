"""What offices and clerks see, cell by cell, against reviewed golden dumps (pytest --update-golden)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from disclosure_xlsx.aggregate import aggregate_paths
from disclosure_xlsx.convert import convert_paths
from disclosure_xlsx.feedback import OVERVIEW, write_outputs
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES
from .golden import check_golden


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    for sample in sorted(SAMPLES.glob("*.xlsx")):
        shutil.copy(sample, folder / sample.name)
    return folder


def test_the_template(format_id: str, tmp_path: Path, update_golden: bool) -> None:
    path = write_template(tmp_path / "t.xlsx", format_id, created=datetime(2026, 1, 1))
    check_golden(f"template-{format_id}", path, update_golden)


def test_the_county_overview(samples: Path, tmp_path: Path, update_golden: bool) -> None:
    write_outputs(validate_paths([samples], workers=1), tmp_path / "out", workers=1)
    check_golden("overview", tmp_path / "out" / OVERVIEW, update_golden)


def test_the_converted_seed(tmp_path: Path, update_golden: bool) -> None:
    seed = next(SAMPLES.glob("2020_宁海县*.xlsx"))
    _, (done,) = convert_paths([seed], tmp_path / "out", workers=1)
    check_golden("converted-seed", done.output, update_golden)


def test_a_roll_up_total(samples: Path, tmp_path: Path, update_golden: bool) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("2024_示例县审计局.xlsx", "2024_2021格式_I2错误.xlsx"):
        shutil.copy(samples / name, inputs / name)
    aggregate_paths([inputs], tmp_path / "total.xlsx", office="示例县人民政府", year=2024, workers=1)
    check_golden("rollup-total", tmp_path / "total.xlsx", update_golden)
