"""The synthetic dataset: exact VOC layout, consistent masks, determinism, safe (re)generation."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from seglab.data import synthetic
from seglab.data.synthetic import (
    MANIFEST,
    SYNTHETIC_CLASSES,
    ensure_synthetic_voc,
    render_sample,
)
from seglab.data.voc import voc_palette
from seglab.errors import SeglabError
from tests.conftest import CONF_DIR

TINY = {"num_train": 12, "num_val": 4, "image_size": 64, "seed": 0}
N = len(SYNTHETIC_CLASSES)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_voc(tmp_path_factory.mktemp("synth"), **TINY)


def _base(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def _ids(root: Path, split: str) -> list[str]:
    return (_base(root) / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def _mask(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def _tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_tree_has_exactly_the_voc_layout(root: Path) -> None:
    assert ensure_synthetic_voc(root, **TINY) == root
    assert {p.name for p in root.iterdir() if not p.name.startswith(".")} == {"VOCdevkit"}
    assert not list(root.glob(".VOCdevkit.*")), "temporary trees left behind"
    assert {p.name for p in (root / "VOCdevkit").iterdir()} == {"VOC2012", MANIFEST}
    base = _base(root)
    assert {p.name for p in base.iterdir()} == {
        "ImageSets",
        "JPEGImages",
        "SegmentationClass",
        "SegmentationObject",
    }
    assert {p.name for p in (base / "ImageSets").iterdir()} == {"Segmentation"}
    splits = {p.name for p in (base / "ImageSets" / "Segmentation").iterdir()}
    assert splits == {"train.txt", "val.txt", "trainval.txt"}
    ids = _ids(root, "trainval")
    assert ids[0] == "synth_000001" and len(ids) == 16
    assert {p.name for p in (base / "JPEGImages").iterdir()} == {f"{i}.jpg" for i in ids}
    for sub in ("SegmentationClass", "SegmentationObject"):
        assert {p.name for p in (base / sub).iterdir()} == {f"{i}.png" for i in ids}


def test_splits_list_existing_ids_without_overlap(root: Path) -> None:
    train, val, trainval = (_ids(root, s) for s in ("train", "val", "trainval"))
    assert len(train) == 12 and len(val) == 4
    assert not set(train) & set(val)
    assert trainval == train + val
    for i in trainval:
        assert (_base(root) / "JPEGImages" / f"{i}.jpg").is_file()


def test_files_have_voc_formats(root: Path) -> None:
    flat_palette = [v for rgb in voc_palette(256) for v in rgb]
    for i in _ids(root, "trainval"):
        with Image.open(_base(root) / "JPEGImages" / f"{i}.jpg") as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 64))
        for sub in ("SegmentationClass", "SegmentationObject"):
            with Image.open(_base(root) / sub / f"{i}.png") as im:
                assert (im.format, im.mode, im.size) == ("PNG", "P", (64, 64))
                assert im.getpalette() == flat_palette


def test_label_values_and_instances_agree(root: Path) -> None:
    for i in _ids(root, "trainval"):
        cls = _mask(_base(root) / "SegmentationClass" / f"{i}.png")
        inst = _mask(_base(root) / "SegmentationObject" / f"{i}.png")
        assert set(np.unique(cls)) <= set(range(N)) | {255}
        assert np.array_equal(cls == 255, inst == 255), "void differs between the two masks"
        assert np.array_equal(cls == 0, inst == 0)
        ids = sorted(set(np.unique(inst)) - {0, 255})
        assert ids == list(range(1, len(ids) + 1)), "instance ids are not 1..K"
        for k in ids:
            assert len(np.unique(cls[inst == k])) == 1, "an instance spans two classes"
            assert cls[inst == k][0] != 0


def test_label_changes_always_pass_through_void(root: Path) -> None:
    # VOC draws a void band around objects: no object pixel touches another label directly.
    for i in _ids(root, "trainval"):
        inst = _mask(_base(root) / "SegmentationObject" / f"{i}.png").astype(int)
        for a, b in ((inst[1:], inst[:-1]), (inst[:, 1:], inst[:, :-1])):
            touching = (a != b) & (a != 255) & (b != 255)
            assert not touching.any()
        assert (inst == 255).any()


def test_every_class_appears(root: Path) -> None:
    seen: set[int] = set()
    for i in _ids(root, "train"):
        seen |= set(np.unique(_mask(_base(root) / "SegmentationClass" / f"{i}.png")).tolist())
    assert seen == set(range(N)) | {255}


def test_generation_is_deterministic(tmp_path: Path, root: Path) -> None:
    again = ensure_synthetic_voc(tmp_path / "again", **TINY)
    assert _tree(root / "VOCdevkit") == _tree(again / "VOCdevkit")
    other = ensure_synthetic_voc(tmp_path / "other", **{**TINY, "seed": 1})
    assert _tree(root / "VOCdevkit") != _tree(other / "VOCdevkit")


def test_samples_do_not_depend_on_their_neighbours() -> None:
    a = render_sample(7, 64, seed=3)
    b = render_sample(7, 64, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_regenerates_only_when_parameters_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = {**TINY, "num_train": 4, "num_val": 2}
    ensure_synthetic_voc(tmp_path, **small)
    assert "(first use)" in capsys.readouterr().out
    manifest = tmp_path / "VOCdevkit" / MANIFEST
    stamp = manifest.stat().st_mtime_ns
    ensure_synthetic_voc(tmp_path, **small)
    assert capsys.readouterr().out == ""
    assert manifest.stat().st_mtime_ns == stamp
    ensure_synthetic_voc(tmp_path, **{**small, "num_train": 5})
    assert "parameters changed" in capsys.readouterr().out
    assert json.loads(manifest.read_text())["num_train"] == 5
    assert len(_ids(tmp_path, "train")) == 5
    assert not list(tmp_path.glob(".VOCdevkit.*"))


def test_interrupted_generation_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(base: Path, *args: int) -> None:
        (base / "JPEGImages").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_voc_tree", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_voc(tmp_path, **TINY)
    assert not (tmp_path / "VOCdevkit").exists()
    assert not list(tmp_path.glob(".VOCdevkit.*"))
    monkeypatch.undo()
    ensure_synthetic_voc(tmp_path, **TINY)
    assert len(_ids(tmp_path, "trainval")) == 16


def test_concurrent_callers_generate_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ensure_synthetic_voc(tmp_path, **TINY)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert capsys.readouterr().out.count("Generating") == 1
    assert len(_ids(tmp_path, "trainval")) == 16


def test_refuses_to_overwrite_a_foreign_voc_tree(tmp_path: Path) -> None:
    (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(SeglabError, match="not a seglab synthetic dataset"):
        ensure_synthetic_voc(tmp_path, **TINY)
    assert (tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir()


def test_palette_is_the_voc_colormap_prefix() -> None:
    config = OmegaConf.load(CONF_DIR / "data" / "synthetic.yaml")  # the palette's one home
    assert voc_palette()[:N] == [tuple(c) for c in config.palette]
    assert list(config.class_names) == list(SYNTHETIC_CLASSES)
    assert SYNTHETIC_CLASSES[0] == "background" and N >= 5
