"""Tuning dataset checks: streaming feature pass, great-expectations suite, report, upload, CLI."""
