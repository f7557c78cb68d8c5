"""`data=folder`: a user's images/ + masks/ through training, eval.py, predict.py, stats and
Mask R-CNN, and each bad file named (README, "Your own data")."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.cli.evaluate import evaluate
from seglab.cli.predict import predict
from seglab.cli.train import train
from seglab.data.folder import FolderDataset
from seglab.data.stats import main as stats_main
from seglab.errors import BadSampleError, DatasetNotFoundError, report_user_errors
from tests.conftest import compose_entry, compose_train, new_store, run_entry_point, tiny_run
from tests.datasets import FOLDER_CLASSES, make_folder

# tiny_run without its synthetic-data keys (data=folder has no generator).
RUN = [o for o in tiny_run(overlays=1) if not o.startswith("data.prepare.")]
SIZE = ["data.image_size=48", "data.crop_size=32", "data.num_workers=0", "data.batch_size=4"]


def _folder_overrides(root: Path, store: str) -> list[str]:
    cache = f"data.cache_dir={root.parent / 'cache'}"
    return ["data=folder", f"data.root={root}", *RUN, *SIZE, cache, f"logger.tracking_uri={store}"]


def _eval_and_predict(ckpt: Path, root: Path, tmp: Path) -> tuple[dict, np.ndarray, Path]:
    scored = evaluate(
        compose_entry(
            "eval",
            [f"ckpt_path={ckpt}", "log_mlflow=false", "progress_bar=false", "data.num_workers=0"],
            output_dir=tmp / "eval",
        )
    )
    image = next((root / "images").glob("*.png"))
    masks = predict(
        compose_entry(
            "predict",
            [f"ckpt_path={ckpt}", f"input={image}", f"output={tmp / 'pred'}", "progress_bar=false"],
            output_dir=tmp / "predict",
        )
    )
    with Image.open(masks[0]) as mask:
        return scored, np.asarray(mask), image


def test_index_masks_train_eval_predict_from_the_readme_command(tmp_path: Path) -> None:
    """The README command (`python train.py data=folder data.root=...`), then eval and predict."""
    root = make_folder(tmp_path / "mydata")
    store = new_store(tmp_path / "store")
    args = [a for a in _folder_overrides(root, store)[1:] if not a.startswith("logger.")]
    proc = run_entry_point("train.py", ["data=folder", *args], tmp_path, tracking_uri=store)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "mlflow_run.json").read_text())
    from mlflow.tracking import MlflowClient

    logged = MlflowClient(store).get_run(run["run_id"]).data
    assert logged.params["data.num_classes"] == "3"  # from classes.txt
    scored, mask, image = _eval_and_predict(
        tmp_path / "run" / "checkpoints" / "last.ckpt", root, tmp_path
    )
    assert scored["test/mIoU"] == pytest.approx(logged.metrics["val/mIoU"], abs=1e-6)
    with Image.open(image) as source:
        assert mask.shape == source.size[::-1] and set(np.unique(mask)) <= {0, 1, 2}


def test_rgb_colour_masks_train_eval_predict_and_stats(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the store's artifacts (./mlruns) stay in the test's folder
    root = make_folder(tmp_path / "colour", colour=True)
    store = new_store(tmp_path / "store")
    cfg = compose_train(
        [*_folder_overrides(root, store), "loss.class_weights=auto"], output_dir=tmp_path / "t"
    )
    assert cfg.data.palette == list(FOLDER_CLASSES.values())  # from classes.yaml
    # Colours → ids: what the reader returns is the index mask the colours were painted from.
    reader = FolderDataset(root, "all", None, 3, palette=cfg.data.palette)
    _, ids = reader.load(0)
    rgb = np.asarray(Image.open(reader.sample_paths(0)["mask"]))
    np.testing.assert_array_equal(np.array(list(FOLDER_CLASSES.values()))[ids], rgb)
    # README: `python -m seglab.data.stats data=folder data.root=...` (its main, in process).
    stats_main(["data=folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"])
    table = capsys.readouterr().out
    assert "images: 8, ignored pixels: 0" in table
    assert all(re.search(rf"\b{name}\s+[1-9]", table) for name in FOLDER_CLASSES), table
    miou = train(cfg)
    scored, mask, _ = _eval_and_predict(
        tmp_path / "t" / "checkpoints" / "last.ckpt", root, tmp_path
    )
    assert scored["test/mIoU"] == pytest.approx(miou, abs=1e-6)
    assert set(np.unique(mask)) <= {0, 1, 2}


def test_mask_rcnn_trains_on_connected_components_of_the_folder(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow's default store (./mlruns) stays in the test's folder
    from seglab.run.pipeline import train as fit
    from tests.test_mask_rcnn_train import TINY_MASK_RCNN

    root = make_folder(tmp_path / "d")
    overrides = ["data=folder", f"data.root={root}", *SIZE, "trainer.fast_dev_run=true"]
    cfg = compose_train(
        [*overrides, *TINY_MASK_RCNN, "data.crop_size=48", "~data.train_transforms.scale",
         "model.min_size=48", "model.max_size=64", "trainer.precision=32-true"],
        output_dir=tmp_path / "out",
    )  # fmt: skip
    assert list(cfg.model.thing_classes) == [1, 2]  # every class but background
    seen, _ = fit(cfg)
    assert seen["train/loss_mask"] > 0 and 0.0 <= seen["val/mAP"] <= 1.0, sorted(seen)


def test_splits_folder_and_val_fraction(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d")
    train, val = FolderDataset(root, "train", num_classes=3), FolderDataset(root, "val", None, 3)
    assert len(val) == 2 and len(train) == 8 and not set(train.names) & set(val.names)
    assert FolderDataset(root, "val", None, 3).names == val.names  # seeded: the same each time
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("img_00\nsub/img_03\n")
    (root / "splits" / "val.txt").write_text("img_01\n")
    assert FolderDataset(root, "train", None, 3).names == ["img_00", "sub/img_03"]
    with pytest.raises(DatasetNotFoundError, match=r"no split file .*test\.txt"):
        FolderDataset(root, "test", None, 3)
    (root / "splits" / "val.txt").write_text("img_01\nnope\n")
    with pytest.raises(DatasetNotFoundError, match=r"val\.txt lists 'nope'"):
        FolderDataset(root, "val", None, 3)


def _write(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda r: (r / "masks" / "img_00.png").unlink(), r"img_00\.jpg has no mask in"),
        (lambda r: shutil.copy(r / "masks" / "img_01.png", r / "masks" / "extra.png"),
         r"extra\.png has no image in"),
        (lambda r: _write(r / "masks" / "img_00.png", np.zeros((10, 10), np.uint8)),
         r"img_00\.png: mask size 10x10 differs from the image size 48x48"),
        (lambda r: _write(r / "masks" / "img_00.png", np.full((48, 48), 7, np.uint8)),
         r"img_00\.png: label values \[7\] outside 0\.\.2"),
        (lambda r: (r / "images" / "img_00.jpg").write_bytes(b"not a jpeg"),
         r"img_00\.jpg: cannot read image"),
    ],
    ids=["image-without-mask", "mask-without-image", "size", "index", "unreadable"],
)  # fmt: skip
def test_bad_files_are_named_or_skipped(tmp_path: Path, spoil, message: str) -> None:
    root = make_folder(tmp_path / "d", n=4)
    spoil(root)
    with pytest.raises(BadSampleError, match=message):
        reader = FolderDataset(root, "all", None, 3)
        for i in range(len(reader)):
            reader.load(i)
    with pytest.warns(UserWarning, match=message):
        reader = FolderDataset(root, "all", None, 3, skip_bad=True)
        items = [reader[i] for i in range(len(reader))]
    assert len(items) >= 3


def test_rgb_colour_outside_the_palette_is_named_with_its_pixel_count(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "d", n=4, colour=True)
    palette = list(FOLDER_CLASSES.values())
    rgb = np.zeros((48, 48, 3), np.uint8)
    rgb[:2, :3] = (10, 200, 30)  # 6 pixels of a colour no class has
    _write(root / "masks" / "img_00.png", rgb)
    reader = FolderDataset(root, "all", None, 3, palette=palette)
    with pytest.raises(BadSampleError, match=r"img_00\.png: RGB colour\(s\) not in data\.palette: "
                       r"\(10, 200, 30\) × 6 px"):  # fmt: skip
        reader.load(0)
    ignoring = FolderDataset(root, "all", None, 3, palette=palette, ignore_color=(10, 200, 30))
    assert (ignoring.load(0)[1] == 255).sum() == 6


def test_missing_class_list_and_root_are_config_errors(tmp_path: Path, capsys) -> None:
    root = make_folder(tmp_path / "d", n=4)
    (root / "classes.txt").unlink()
    for overrides, message in [
        ([f"data.root={root}"], r"no class list: set data\.class_names"),
        ([f"data.root={tmp_path / 'none'}"], r"data\.root=.*none is not a directory"),
    ]:
        cfg = compose_train(["data=folder", *overrides])
        # As an entry point reports it: the one-line message, exit code 2.
        with pytest.raises(SystemExit) as raised:
            report_user_errors(lambda c=cfg: c.model.num_classes)()
        assert raised.value.code == 2
        assert re.search(message, capsys.readouterr().err.replace("\n", ""))
    cfg = compose_train(["data=folder", f"data.root={root}", "data.class_names=[bg,a,b,c]"])
    assert cfg.model.num_classes == 4
