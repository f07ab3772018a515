"""Per-seed statistics and the record significance test, without scipy.

The challenge: a record must beat SOTA by at least 0.005 nats with p < 0.01. We test
H0: improvement ≤ margin against H1: improvement > margin with a one-sided Welch t-test
(a one-sample t-test when SOTA is a single number), in BPB units.

BPB <-> nats conversion used (stated in every report): nats per BYTE,
    Δnats = ΔBPB × ln 2,  so the margin is 0.005 / ln 2 = 0.0072135 BPB.
It is tokenizer-agnostic (records with different tokenizers compare per byte). The per-token
figure (Δnats/token = ΔBPB × ln 2 × bytes/token, bytes/token = val_loss / (val_bpb × ln 2) from the
logs) is reported alongside when the logs give it.

The Student t CDF uses the regularized incomplete beta function, evaluated with Lentz's
continued fraction (Numerical Recipes §6.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LN2 = math.log(2.0)
CONVERSION = "Δnats per byte = ΔBPB × ln 2 (margin 0.005 nats = 0.0072135 BPB)"


def mean(xs: list[float]) -> float:
    return math.fsum(xs) / len(xs)


def std(xs: list[float], ddof: int = 1) -> float:
    if len(xs) - ddof <= 0:
        return float("nan")
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - ddof))


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        de = d * c
        h *= de
        if abs(de - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    bt = math.exp(lbt)
    if x < (a + 1.0) / (a + b + 2.0):
        return bt * _betacf(a, b, x) / a
    return 1.0 - bt * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom (df may be fractional: Welch)."""
    if math.isnan(t) or df <= 0:
        return float("nan")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(|T| > |t|) / 2
    return tail if t > 0 else 1.0 - tail


def t_cdf(t: float, df: float) -> float:
    return 1.0 - t_sf(t, df)


@dataclass
class Significance:
    n: int
    mean: float
    std: float
    sota_mean: float
    sota_n: int
    sota_std: float
    improvement_bpb: float
    improvement_nats: float
    margin_bpb: float
    t: float
    df: float
    p: float
    significant: bool
    test: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def significance(values: list[float], sota: list[float] | float, *, margin_nats: float = 0.005,
                 alpha: float = 0.01) -> Significance:
    """One-sided test that mean(SOTA) − mean(values) > margin (in BPB), Welch when SOTA has seeds."""
    xs = [float(v) for v in values]
    n = len(xs)
    margin = margin_nats / LN2
    m, s = mean(xs), std(xs)
    if isinstance(sota, (int, float)):
        sm, sn, ss = float(sota), 1, 0.0
        se2 = s * s / n
        df = n - 1.0
        test = "one-sided one-sample t-test (SOTA as a fixed value)"
    else:
        ys = [float(v) for v in sota]
        sm, sn = mean(ys), len(ys)
        ss = std(ys) if sn > 1 else 0.0
        va, vb = s * s / n, (ss * ss / sn if sn > 1 else 0.0)
        se2 = va + vb
        if sn > 1 and se2 > 0:
            df = se2 * se2 / ((va * va / (n - 1) if n > 1 else 0.0) + (vb * vb / (sn - 1)))
        else:
            df = n - 1.0
        test = "one-sided Welch t-test" if sn > 1 else "one-sided one-sample t-test (SOTA has one value)"
    diff = sm - m
    if n < 2 or math.isnan(s):
        t, p = float("nan"), float("nan")
    elif se2 == 0:
        t = math.inf if diff > margin else -math.inf
        p = 0.0 if diff > margin else 1.0
    else:
        t = (diff - margin) / math.sqrt(se2)
        p = t_sf(t, df)
    return Significance(n=n, mean=m, std=s, sota_mean=sm, sota_n=sn, sota_std=ss, improvement_bpb=diff,
                        improvement_nats=diff * LN2, margin_bpb=margin, t=t, df=df, p=p,
                        significant=bool(p == p and p < alpha), test=test)
