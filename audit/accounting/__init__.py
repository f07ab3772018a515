"""The accounting engine: meta, decoded, source and sidecar bytes over a val stream.

`run_accounting(...)` (engine.py) knows no tokenizer backend by name: it takes a token stream,
a `MetaTable`, optionally a `Tokenizer` (anything with decode_stream or decode_many) and a
reference `DocBytes`, and returns an `Accounting` of figures the tokenizer audit judges.
"""

from audit.accounting.engine import Accounting, run_accounting  # noqa: F401
