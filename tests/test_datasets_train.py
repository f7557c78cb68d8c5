"""`train.py data=<name> data.root=<fixture> trainer.fast_dev_run=true` for all six datasets.

All run in-process through the same `train()` the CLI calls, which saves an interpreter
start-up each; the CLI wrapper itself is covered by tests/test_cli_errors.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import datasets as D
from tests.conftest import compose_train

pytestmark = pytest.mark.slow

SMALL = ["data.batch_size=2", "data.num_workers=0", "trainer.accelerator=cpu", "trainer.devices=1"]
PER_DATASET = {
    "voc": ["data.crop_size=32", "data.val_pad_size=64"],
    "coco_stuff": ["data.crop_size=32", "data.val_pad_size=64"],
    "cityscapes": ["data.crop_size=32"],
    "inria": ["data.crop_size=32", "data.dataset.val_crop_size=5000"],  # val: whole tiles
    "ccp": ["data.image_size=64", "data.crop_size=32", "data.dataset.val_size=3"],
}
MAKERS = D.ROOT_MAKERS


@pytest.mark.parametrize("name", list(PER_DATASET))
def test_fast_dev_run_in_process(name: str, tmp_path: Path) -> None:
    from seglab.run.pipeline import train

    root = MAKERS[name](tmp_path / name)
    overrides = [
        f"data={name}",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.fast_dev_run=true",
        *SMALL,
        *PER_DATASET[name],
    ]
    seen, _ = train(compose_train(overrides, output_dir=tmp_path / "out"))
    assert 0.0 <= seen["val/mIoU"] <= 1.0 and seen["train/loss"] > 0, sorted(seen)
    if name == "inria":  # one val batch = the two whole val tiles, one per city
        assert {"val/IoU_city/austin", "val/IoU_city/vienna"} <= set(seen), sorted(seen)


def test_lits_run_reports_dice_per_case(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The epoch's metrics, as train() hands them to the summary, hold the per-case Dice."""
    from seglab.run.pipeline import train

    root, _ = D.make_lits(tmp_path / "lits")
    overrides = [
        "data=lits",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.fast_dev_run=true",
        *SMALL,
    ]
    seen, _ = train(compose_train(overrides, output_dir=tmp_path / "out"))
    assert "LiTS: caching volume-" in capsys.readouterr().err  # the preparation is announced
    for key in ("dice_per_case/liver", "dice_global/liver", "dice_per_case/tumour"):
        assert 0.0 <= seen[f"val/{key}"] <= 1.0, sorted(seen)


def test_missing_root_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from seglab.cli.train import train

    missing = tmp_path / "nowhere"
    cfg = compose_train(["data=cityscapes", f"data.root={missing}"], output_dir=tmp_path / "out")
    with pytest.raises(SystemExit) as info:
        train(cfg)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "gtFine/{train,val,test}/<city>/" in err
    assert "cityscapes-dataset.com" in err and "Traceback" not in err


def test_skip_bad_counts_files_from_worker_processes(tmp_path: Path) -> None:
    """A truncated photo read in a DataLoader worker is warned about and counted at the end."""
    from seglab.cli.train import train
    from seglab.data.base import BadSampleWarning

    root, written = D.make_ccp(tmp_path / "ccp")
    bad = root / "photos" / f"{sorted(written)[1]}.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    overrides = [
        "data=ccp",
        f"data.root={root}",
        "data.skip_bad=true",
        "data.num_workers=1",
        "data.batch_size=16",  # the whole train split in one batch: the bad photo is read
        "data.image_size=64",
        "data.crop_size=32",
        "data.dataset.val_size=3",
        "trainer.fast_dev_run=true",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
    ]
    with pytest.warns(BadSampleWarning, match=rf"ccp: skipped 1 bad file.*{bad.name}"):
        train(compose_train(overrides, output_dir=tmp_path / "out"))
