"""Tokenizer audit rules (family "tokenizer", ids TOK0xx). Filled by the tokenizer audit."""
