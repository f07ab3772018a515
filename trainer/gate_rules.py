"""Trainer gate rules (family "gate", ids GATE0xx)."""
