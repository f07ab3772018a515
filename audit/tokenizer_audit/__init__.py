"""The tokenizer audit: static checks of a meta against its tokenizer, and the byte accounting of
a val stream against a reference (rules TOK0xx). Entry point: `audit_tokenizer(meta, AuditOptions(...))`."""

from audit.tokenizer_audit.api import audit_tokenizer, canonical_fix  # noqa: F401
from audit.tokenizer_audit.options import AuditOptions  # noqa: F401
