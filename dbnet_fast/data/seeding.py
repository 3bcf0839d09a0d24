"""Reproducible randomness for datasets and DataLoader workers.

Every random choice of a sample (the synthetic image, the augmentation) comes
from a ``numpy.random.Generator`` built from a tuple of integers with
:func:`sample_rng`, e.g. ``(seed, split, index)`` for a synthetic image and
``(seed, ..., index, epoch)`` for its augmentation. A sample is then the same
whichever worker loads it and in whatever order, so a DataLoader gives the
same batches with any ``num_workers``. The trainer should:

- call ``dataset.set_epoch(epoch)`` before iterating each epoch (with the
  default ``persistent_workers=False`` the workers get the dataset anew each
  epoch, so they see the new epoch; persistent workers would keep the old one);
- shuffle with a seeded generator, e.g.
  ``DataLoader(..., shuffle=True, generator=torch.Generator().manual_seed(seed))``;
- pass ``collate_fn=collate``. No ``worker_init_fn`` is needed: randomness
  does not depend on the worker, and DataLoader workers already run torch on
  one thread. Do not call ``cv2.setNumThreads`` inside forked workers: resizing
  OpenCV's thread pool inherited from the parent can deadlock (seen here);
  call it, if at all, in the main process before the loader starts.
"""

from __future__ import annotations

import numpy as np

SPLITS = {"train": 0, "val": 1}  # synthetic splits; the code is part of every seed tuple


def sample_rng(*keys: int) -> np.random.Generator:
    """A generator that is a pure function of the non-negative integers ``keys``."""
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
            raise ValueError(f"sample_rng: keys must be non-negative ints, got {keys!r}")
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))
