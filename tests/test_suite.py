"""The suite's own set-up: tests that share a module's fixture run in one xdist process, so that the
fixture (a batch validated and printed by LibreOffice, say) is built once, not once per process."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def shared() -> object:
    return object()


def test_a_test_sharing_a_module_fixture_is_in_that_modules_group(request: pytest.FixtureRequest,
                                                                   shared: object) -> None:
    """conftest.py marks it with its module's group before xdist reads the marks (its hook runs first):
    xdist then names the test `…@tests/test_suite.py` and sends the whole group to one process. With
    pytest 9.2 it does not (pytest-xdist#1386: its renaming no longer takes), hence pyproject's pytest < 9.2."""
    groups = [mark.args[0] if mark.args else mark.kwargs["name"] for mark in request.node.iter_markers("xdist_group")]
    assert groups == ["tests/test_suite.py"]
    if os.environ.get("PYTEST_XDIST_WORKER") and getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@tests/test_suite.py"), request.node.nodeid


def test_a_test_without_one_is_in_no_group(request: pytest.FixtureRequest) -> None:
    assert list(request.node.iter_markers("xdist_group")) == []
    assert "@" not in request.node.nodeid
