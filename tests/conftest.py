"""Shared test helpers: where the real fixtures are, and skips that say why."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_FIXTURES = SHARED / "fixtures"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/fixtures; skips the test (with the reason) when absent."""
    p = SHARED_FIXTURES.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"optional resource missing: {p} (the ../shared fixtures are not beside this checkout)")
    return p


@pytest.fixture
def shared():
    return shared_path
