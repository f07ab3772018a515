"""golfcheck's audit library: tokenizer byte accounting and submission compliance.

The CLI (`audit.cli`) is a thin layer over this package; tests call the library directly.
"""

__version__ = "0.1.0"
