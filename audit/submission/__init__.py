"""Submission audit: a record folder's files, logs, code (parsed with `ast`, never run), claims,
statistics and tokenizer, checked against the challenge rules (SUB0xx). Entry points below."""

from audit.submission.api import audit_paths, audit_submission  # noqa: F401
