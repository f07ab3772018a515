"""t distribution (own incomplete-beta implementation) and the significance test."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.submission.stats import LN2, betainc, mean, significance, std, t_cdf, t_sf

# Reference values of Student's t upper tail (standard tables / closed forms).
KNOWN = [(1.0, 1, 0.25), (3.0, 2, 0.5 - 3.0 / (2 * math.sqrt(11.0))), (2.0, 5, 0.050969739),
         (2.764, 10, 0.01), (6.965, 2, 0.01), (0.0, 7, 0.5), (-1.0, 1, 0.75)]


@pytest.mark.parametrize("t,df,p", KNOWN)
def test_t_sf_known_values(t, df, p):
    assert t_sf(t, df) == pytest.approx(p, abs=2e-5)


def test_betainc_closed_forms():
    assert betainc(1, 1, 0.3) == pytest.approx(0.3)
    assert betainc(2, 1, 0.5) == pytest.approx(0.25)
    assert betainc(0.5, 0.5, 0.5) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(st.floats(-50, 50), st.floats(0.5, 200))
def test_t_cdf_is_a_symmetric_cdf(t, df):
    c = t_cdf(t, df)
    assert 0.0 <= c <= 1.0
    assert c + t_cdf(-t, df) == pytest.approx(1.0, abs=1e-9)
    assert t_cdf(t + 0.5, df) >= c - 1e-12


def test_mean_std_ddof():
    xs = [1.08079352, 1.08103103, 1.08118408]
    assert mean(xs) == pytest.approx(1.08100288, abs=1e-8)
    assert std(xs) == pytest.approx(0.0001968, abs=1e-6) and std(xs, 0) < std(xs)


def test_significance_one_sample_and_welch():
    s = significance([1.0801, 1.0805, 1.0809], 1.1147)
    assert s.significant and s.df == 2 and s.margin_bpb == pytest.approx(0.005 / LN2)
    assert s.improvement_nats == pytest.approx((1.1147 - 1.0805) * LN2)
    w = significance([1.0801, 1.0805, 1.0809], [1.1140, 1.1147, 1.1150])
    assert w.test.startswith("one-sided Welch") and 2 <= w.df <= 4 and w.significant
    # improvement smaller than the margin: never significant, however many seeds
    n = significance([1.0800 + 1e-5 * i for i in range(10)], 1.0860)
    assert not n.significant and n.p > 0.5


def test_significance_needs_two_seeds():
    s = significance([1.08], 1.2)
    assert math.isnan(s.p) and not s.significant
