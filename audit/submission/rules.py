"""Submission rules (family "submission", ids SUB0xx)."""
