"""How DataLoader workers start, also inside a joblib (loky) worker process.

A loky worker sets its process-wide default start method to "loky", whose Popen needs the
`env` attribute of loky's own Process class. PyTorch's DataLoader starts plain
`multiprocessing.Process` objects through that default, which then fail with "'Process' object
has no attribute 'env'" (joblib/joblib#1104, pytorch/pytorch#44687): every job of
`hydra/launcher=joblib` with `data.num_workers>0` died in its first epoch. There the workers get
the platform's own start method instead, as they would in any other process.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

LOKY_METHODS = ("loky", "loky_init_main")


def loader_context() -> BaseContext | None:
    """The start context for DataLoader workers; None (PyTorch's default) outside loky."""
    if multiprocessing.get_start_method(allow_none=True) not in LOKY_METHODS:
        return None
    # The first of the standard methods is the platform's default (fork, forkserver or spawn).
    return multiprocessing.get_context(multiprocessing.get_all_start_methods()[0])
