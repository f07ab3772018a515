"""Submission rules (family "submission", ids SUB0xx): declared beside their checks in
`audit.submission.checks.*` (and the tokenizer pair in `tokcheck`); importing this module registers
them all. Each rule quotes the challenge rule it applies (../shared/spec/rules.md)."""

from __future__ import annotations

from audit.submission.checks import all_checks

all_checks()  # importing the checks declares their rules
from audit.submission.checks.claims import *  # noqa: F401,F403
from audit.submission.checks.denominator import *  # noqa: F401,F403
from audit.submission.checks.files import *  # noqa: F401,F403
from audit.submission.checks.legality import *  # noqa: F401,F403
from audit.submission.checks.seeds import *  # noqa: F401,F403
from audit.submission.checks.significance import *  # noqa: F401,F403
from audit.submission.checks.sizes import *  # noqa: F401,F403
from audit.submission.checks.times import *  # noqa: F401,F403
from audit.submission.tokcheck import TOKENIZER_FAILED, TOKENIZER_UNVERIFIED  # noqa: F401
