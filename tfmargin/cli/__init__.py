"""Thin absl command-line wrappers over library functions (`python -m tfmargin.cli.NAME`)."""
