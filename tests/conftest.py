"""Shared test helpers: where the real fixtures are, and skips that say why."""

from __future__ import annotations

from contextlib import contextmanager
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


# CI runs property tests derandomized (the same examples on every run, so a red CI is
# reproducible); locally Hypothesis explores new examples each time.
from hypothesis import settings as _hyp_settings  # noqa: E402

_hyp_settings.register_profile("ci", derandomize=True, print_blob=True)
import os as _os  # noqa: E402

if _os.environ.get("CI"):
    _hyp_settings.load_profile("ci")


@contextmanager
def chunking(size: int, threads: int | None = None):
    """Chunked passes (audit.chunked) at chunk size `size`, optionally with `threads` workers."""
    from audit import chunked

    old = chunked.CHUNK
    chunked.CHUNK = size
    try:
        if threads is None:
            yield
        else:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("GOLFCHECK_THREADS", str(threads))
                yield
    finally:
        chunked.CHUNK = old
