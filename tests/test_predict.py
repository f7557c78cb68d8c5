"""predict.py: every common image mode, nested folders, globs, huge images, real photos."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from seglab.errors import SeglabError
from tests.conftest import CONF_DIR, run_entry_point


def compose_predict(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("predict", overrides=[*overrides, "progress_bar=false"])


def task_mask(ckpt: Path, rgb: np.ndarray) -> np.ndarray:
    """The checkpoint's class map of an RGB image, normalised by hand and run at full size."""
    from seglab.tasks.checkpoint import load_task

    task = load_task(ckpt)
    data = task.hparams["data"]
    mean, std = np.array(data["mean"]), np.array(data["std"])
    chw = torch.from_numpy(((rgb / 255 - mean) / std).transpose(2, 0, 1)).float()
    with torch.no_grad():
        return task(chw[None]).argmax(dim=1)[0].numpy()


def _write_inputs(root: Path) -> dict[str, tuple[int, int]]:
    """Images of every mode; returns relative stem → (width, height)."""
    rng = np.random.default_rng(0)
    (root / "nested" / "deeper").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (70, 90, 4), np.uint8), "RGBA").save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (45, 33), np.uint8), "L").save(root / "nested/gray.png")
    Image.fromarray(rng.integers(0, 65535, (40, 50), np.uint16)).save(root / "nested/deep16.png")
    palette = Image.fromarray(rng.integers(0, 4, (30, 31), np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    palette.save(root / "nested/deeper/palette.png")
    tifffile.imwrite(root / "rgb16.tif", rng.integers(0, 65535, (36, 52, 3), np.uint16))
    # Over infer.auto_factor (2) × the window (128 below) on a side: sliding window.
    Image.fromarray(rng.integers(0, 255, (500, 600, 3), np.uint8)).save(root / "large.jpg")
    return {
        "rgba": (90, 70), "nested/gray": (33, 45), "nested/deep16": (50, 40),
        "nested/deeper/palette": (31, 30), "rgb16": (52, 36), "large": (600, 500),
    }  # fmt: skip


@pytest.mark.slow
def test_predict_cli_writes_every_output_at_the_input_size(
    tiny_checkpoint: dict, tmp_path: Path
) -> None:
    sizes = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    args = [
        f"ckpt_path={tiny_checkpoint['ckpt']}", f"input={tmp_path / 'in'}", f"output={out}",
        "probs=true", "infer.window=128", "infer.stride=128", "alpha=0.3",
    ]  # fmt: skip
    proc = run_entry_point("predict.py", args, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for stem, size in sizes.items():
        mask = Image.open(out / f"{stem}_mask.png")
        assert mask.mode == "P" and mask.size == size, stem
        assert np.array(mask).max() < 6
        assert mask.getpalette()[3:6] == [128, 0, 0]  # the dataset's palette: class 1 = disc
        assert Image.open(out / f"{stem}_overlay.png").size == size
        probs = np.load(out / f"{stem}_probs.npy")
        assert probs.shape == (6, size[1], size[0]) and probs.dtype == np.float16
        np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1, atol=5e-3)
        assert (probs.argmax(axis=0) == np.array(mask)).mean() > 0.99  # fp16 ties aside
    with (out / "summary.csv").open() as handle:
        rows = {r["image"]: r for r in csv.DictReader(handle)}
    suffixes = [".png", ".png", ".png", ".png", ".tif", ".jpg"]
    assert set(rows) == {stem + suffix for stem, suffix in zip(sizes, suffixes, strict=True)}
    assert rows["large.jpg"]["inference"] == "slide" and rows["rgba.png"]["inference"] == "whole"
    for row in rows.values():
        shares = [
            float(row[c]) for c in ("background", "disc", "square", "triangle", "ring", "star")
        ]
        assert sum(shares) == pytest.approx(1.0, abs=1e-4)


def test_mask_is_the_argmax_of_the_normalised_image(tiny_checkpoint: dict, tmp_path: Path) -> None:
    """predict's reading + normalisation + inference equals the model on the image by hand."""
    from seglab.cli.predict import predict

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (50, 70, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    cfg = compose_predict(
        [f"ckpt_path={tiny_checkpoint['ckpt']}", f"input={tmp_path}/*.png", f"output={tmp_path}/o"]
    )
    (mask_path,) = predict(cfg)
    expected = task_mask(tiny_checkpoint["ckpt"], rgb)
    assert mask_path == tmp_path / "o" / "x_mask.png"
    np.testing.assert_array_equal(np.array(Image.open(mask_path)), expected)


def _with_val_transforms(ckpt_path: Path, steps: list[dict], out: Path) -> Path:
    """A copy of the checkpoint whose data config validates through `steps`."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["data"]["val_transforms"] = steps
    torch.save(ckpt, out)
    return out


RESIZE_AND_PAD = [  # as conf/data/ccp.yaml validates, at test size
    {"_target_": "albumentations.LongestMaxSize", "max_size": 48},
    {"_target_": "albumentations.PadIfNeeded", "min_height": 64, "min_width": 64,
     "position": "top_left", "border_mode": 0, "fill": 0, "fill_mask": 255},
]  # fmt: skip


def test_predict_sees_the_image_as_validation_does(tiny_checkpoint: dict, tmp_path: Path) -> None:
    """With val_transforms resizing (longest side 48) and padding (to 64), predict.py runs the
    model on that canvas, crops the logits to the image, resizes them back to its size."""
    import albumentations as A
    import torch.nn.functional as F

    from seglab.cli.predict import predict
    from seglab.tasks.checkpoint import load_task

    ckpt = _with_val_transforms(tiny_checkpoint["ckpt"], RESIZE_AND_PAD, tmp_path / "v.ckpt")
    rgb = np.random.default_rng(2).integers(0, 255, (50, 70, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    cfg = compose_predict(
        [f"ckpt_path={ckpt}", f"input={tmp_path}/x.png", f"output={tmp_path}/o", "probs=true",
         "probs_dtype=float32", "infer=whole"]
    )  # fmt: skip
    (mask_path,) = predict(cfg)

    task = load_task(ckpt)
    data = task.hparams["data"]
    resize_pad = A.Compose(
        [A.LongestMaxSize(max_size=48),
         A.PadIfNeeded(64, 64, position="top_left", border_mode=0, fill=0, fill_mask=255)]
    )  # fmt: skip
    canvas = resize_pad(image=rgb)["image"]
    assert canvas.shape == (64, 64, 3)  # the image is its top-left 34×48 (70 → 48, 50 → 34)
    mean, std = np.array(data["mean"]), np.array(data["std"])
    chw = torch.from_numpy(((canvas / 255 - mean) / std).transpose(2, 0, 1)).float()
    with torch.no_grad():
        logits = task(chw[None])[:, :, :34, :48]
    logits = F.interpolate(logits, size=(50, 70), mode="bilinear", align_corners=False)[0]
    mask = np.array(Image.open(mask_path))
    assert mask.shape == (50, 70)
    np.testing.assert_array_equal(mask, logits.argmax(dim=0).numpy())
    probs = np.load(tmp_path / "o" / "x_probs.npy")
    np.testing.assert_allclose(probs, torch.softmax(logits, dim=0).numpy(), atol=1e-5)


def test_val_transforms_that_cut_the_image_are_refused(
    tiny_checkpoint: dict, tmp_path: Path
) -> None:
    from seglab.cli.predict import predict
    from seglab.errors import ConfigError

    crop = [{"_target_": "albumentations.CenterCrop", "height": 32, "width": 32}]
    ckpt = _with_val_transforms(tiny_checkpoint["ckpt"], crop, tmp_path / "c.ckpt")
    Image.new("RGB", (70, 50)).save(tmp_path / "x.png")
    cfg = compose_predict([f"ckpt_path={ckpt}", f"input={tmp_path}/x.png", f"output={tmp_path}/o"])
    with pytest.raises(ConfigError, match=r"data.val_transforms \(CenterCrop\) cannot be undone"):
        predict.__wrapped__(cfg)


@pytest.mark.parametrize(
    ("make", "spec", "message"),
    [
        (lambda d: None, "{d}/missing", "no such file or folder"),
        (lambda d: (d / "notes.txt").write_text("x"), "{d}", "holds no image"),
        (
            lambda d: [Image.new("RGB", (8, 8)).save(d / n) for n in ("a.png", "a.jpg")],
            "{d}",
            "would both be written as a_mask.png",
        ),
        (lambda d: (d / "bad.png").write_bytes(b"not a png"), "{d}", "bad.png: cannot read image"),
    ],
)
def test_bad_inputs_are_named(tiny_checkpoint: dict, tmp_path: Path, make, spec, message) -> None:
    from seglab.cli.predict import predict

    make(tmp_path)
    cfg = compose_predict(
        [
            f"ckpt_path={tiny_checkpoint['ckpt']}",
            f"input={spec.format(d=tmp_path)}",
            f"output={tmp_path / 'out'}",
        ]  # fmt: skip
    )
    with pytest.raises(SeglabError, match=message):
        predict.__wrapped__(cfg)  # undecorated: the error itself, not report_user_errors' exit
