"""Data pipeline pieces: label building for DataLoader workers."""

from dbnet_fast.data.targets import DBTargetBuilder

__all__ = ["DBTargetBuilder"]
