"""How user errors read on the console."""

from __future__ import annotations

import pytest


def test_errors_from_loader_workers_are_reported_without_their_traceback() -> None:
    from torch.utils.data import DataLoader, Dataset

    from seglab.errors import BadSampleError, user_message

    class Broken(Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int) -> None:
            raise BadSampleError("/d/a.png: label values [30] outside 0..5")

    with pytest.raises(BadSampleError) as caught:
        next(iter(DataLoader(Broken(), num_workers=1)))
    assert user_message(caught.value) == "/d/a.png: label values [30] outside 0..5"


def test_imported_objects_are_frozen_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # A multirun's later jobs run in the same process: freezing again would make the earlier
    # jobs' garbage permanent.
    import gc

    import seglab.cli

    monkeypatch.setattr(seglab.cli, "_frozen", False)
    try:
        seglab.cli.freeze_imported_objects()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        garbage = [[] for _ in range(1000)]
        seglab.cli.freeze_imported_objects()
        # The count may drop while other threads free frozen objects, so the test asks only
        # that the 1000 new lists (and the list holding them) were not frozen.
        assert gc.get_freeze_count() < frozen + len(garbage)
        del garbage
    finally:
        gc.unfreeze()
