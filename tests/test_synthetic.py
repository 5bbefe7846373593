"""The balanced-report generator: every identity and rule holds for any seed (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.synthetic import balanced_report


@settings(max_examples=60, deadline=None)
@given(format_id=st.sampled_from(list(all_formats())), seed=st.integers(0, 2**32),
       zero_share=st.floats(0.0, 1.0), maximum=st.integers(1, 10_000))
def test_balanced_reports_satisfy_every_identity_and_rule(format_id, seed, zero_share, maximum) -> None:
    fmt = get_format(format_id)
    values = balanced_report(format_id, random.Random(seed), zero_share=zero_share, maximum=maximum)
    assert set(values) == set(fmt.cells)
    assert [i.rule for i in fmt.identities if not i.holds(values)] == []
    assert [r.rule for r in fmt.rules if not r.holds(values)] == []
    for cid, value in values.items():
        cell = fmt.cells[cid]
        if cell.type.integer:
            assert value == int(value), cid
        if cell.type.min is not None:
            assert value >= cell.type.min, cid
