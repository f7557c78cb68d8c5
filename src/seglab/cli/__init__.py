"""The commands behind train.py, eval.py, predict.py and export.py."""

import gc

_frozen = False


def freeze_imported_objects() -> None:
    """Hide what the imports built (torch, Lightning, MLflow: millions of objects that live as
    long as the process) from the cyclic garbage collector (`gc.freeze`), so full collections
    and the one at interpreter exit stop re-scanning them: ≈ 2 s off every run's exit on a CPU.

    Once per process, just after the command's imports: a multirun's later jobs (same process)
    must not freeze the garbage of the jobs before them.
    """
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True
