"""golfcheck's reference trainer, gated by the audits."""
