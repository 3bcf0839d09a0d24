"""The package version without its build tag (setup.py adds +cpu / +cuXYZ)."""

__version__ = "0.1.0"
