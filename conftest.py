"""The two tiers of the tests.

``pytest`` with no paths runs the fast tier, the one to run before each commit: every
test not marked ``slow`` (a few minutes on two cores). ``pytest --all`` runs every test,
as ``.ci/run`` does, and ``pytest -m slow`` only the slow tier. Paths named on the command
line run whole, slow tests included: ``pytest tests/e2e/test_crash.py`` does what it says.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        dest="all_tiers",
        help="run the slow tier too (every test), as .ci/run does",
    )


def _fast_tier_only(config: pytest.Config) -> bool:
    """No ``--all``, no marker expression and no paths of one's own: the fast tier."""
    return not (
        config.getoption("all_tiers")
        or config.getoption("markexpr")
        or config.args_source is pytest.Config.ArgsSource.ARGS
    )


def pytest_report_header(config: pytest.Config) -> str:
    if _fast_tier_only(config):
        return "tests: the fast tier (`pytest --all` runs the slow tier too, as .ci/run does)"
    return "tests: every tier the paths and -m select"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _fast_tier_only(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
