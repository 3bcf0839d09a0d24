"""Float64 NumPy implementations of the published algorithms: the oracles of
the tests and the baselines of the benchmarks. Written from the algorithm
descriptions; slow on purpose (clear over fast)."""

from dbnet_fast.reference.binarize import db_binarize_grad_reference, db_binarize_reference
from dbnet_fast.reference.loss import db_loss_reference
from dbnet_fast.reference.targets import db_targets_reference

__all__ = [
    "db_binarize_grad_reference",
    "db_binarize_reference",
    "db_loss_reference",
    "db_targets_reference",
]
