"""One image reader (seglab.data.io.read_image) for the datasets, eval.py and predict.py: a phone
photo whose JPEG says "rotate me" (EXIF orientation) is seen upright by training and prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.data.ccp import CCP
from seglab.data.io import read_image
from tests.datasets import make_ccp
from tests.test_predict import compose_predict, task_mask

ORIENTATION_TAG = 0x0112
UPRIGHT_K = {6: -1, 8: 1}  # EXIF orientation → np.rot90's k that turns the stored pixels upright


def save_phone_photo(path: Path, upright: np.ndarray, orientation: int) -> np.ndarray:
    """A JPEG storing `upright` turned sideways, with the EXIF tag that turns it back, as phones
    write them; returns the pixels upright as decoded (JPEG is lossy)."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    stored = np.ascontiguousarray(np.rot90(upright, k=-UPRIGHT_K[orientation]))
    Image.fromarray(stored).save(path, quality=95, exif=exif)
    with Image.open(path) as image:  # PIL decodes the stored pixels and leaves the tag alone
        decoded = np.array(image)
    assert decoded.shape == stored.shape != upright.shape  # sideways on disk: the test means it
    return np.rot90(decoded, k=UPRIGHT_K[orientation])


@pytest.mark.parametrize("orientation", [6, 8])
def test_training_reader_and_predict_reader_see_a_phone_photo_upright(
    tmp_path: Path, orientation: int
) -> None:
    root, masks = make_ccp(tmp_path / "ccp", n=4)
    photo = root / "photos" / "0001.jpg"
    upright = np.asarray(Image.open(photo))  # 64×40, the annotation's size
    expected = save_phone_photo(photo, upright, orientation)
    dataset = CCP(root, "all")
    index = dataset.ids.index("0001")
    image, mask = dataset.load(index)  # the image/mask size check passes: the photo is upright
    np.testing.assert_array_equal(image, expected)
    np.testing.assert_array_equal(mask, masks["0001"])
    assert dataset[index]["image"].shape == (3, 64, 40)
    # predict.py reads with the same function; eval.py goes through the dataset readers.
    from seglab.cli import predict as predict_module

    assert predict_module.read_image is read_image
    np.testing.assert_array_equal(read_image(photo), expected)


def test_predict_segments_a_phone_photo_upright(tiny_checkpoint: dict, tmp_path: Path) -> None:
    from seglab.cli.predict import predict

    rgb = np.random.default_rng(4).integers(0, 255, (50, 70, 3), np.uint8)
    (tmp_path / "in").mkdir()
    upright = save_phone_photo(tmp_path / "in" / "phone.jpg", rgb, orientation=6)
    cfg = compose_predict(
        [f"ckpt_path={tiny_checkpoint['ckpt']}", f"input={tmp_path / 'in'}",
         f"output={tmp_path / 'out'}", "infer=whole"]
    )  # fmt: skip
    (mask_path,) = predict(cfg)
    expected = task_mask(tiny_checkpoint["ckpt"], upright)
    mask = np.array(Image.open(mask_path))
    assert mask.shape == (50, 70)
    np.testing.assert_array_equal(mask, expected)
    assert Image.open(tmp_path / "out" / "phone_overlay.png").size == (70, 50)


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    from seglab.errors import BadSampleError

    path = tmp_path / "broken.jpg"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BadSampleError, match=r"broken\.jpg: cannot read image"):
        read_image(path)


def _png_modes(rng: np.random.Generator) -> dict[str, Image.Image]:
    rgb = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    return {
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray(rng.integers(0, 256, (30, 41, 4), dtype=np.uint8)),
        "L": Image.fromarray(rgb[..., 0]),
        "P": Image.fromarray(rgb).convert("P"),
        "I;16": Image.fromarray(rng.integers(0, 65535, (30, 41), dtype=np.uint16)),
    }


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
@pytest.mark.parametrize("channels", [3, 1])
def test_png_photos_read_by_cv2_equal_pil(
    mode: str, channels: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PNG photos go through cv2 where that is faster and lossless-equal; every mode gives the
    pixels PIL gives (palette and 16-bit ones are PIL's to read)."""
    from seglab.data import io

    path = tmp_path / "photo.png"
    _png_modes(np.random.default_rng(0))[mode].save(path)
    assert (io._png_with_cv2(path, Image.open(path)) is not None) == (mode in ("RGB", "RGBA", "L"))
    fast = read_image(path, channels)
    monkeypatch.setattr(io, "_png_with_cv2", lambda path, image: None)
    np.testing.assert_array_equal(fast, read_image(path, channels))


def test_png_with_exif_orientation_is_turned_upright(tmp_path: Path) -> None:
    """A PNG carrying an EXIF orientation is read by PIL, which applies it (cv2 would not)."""
    upright = np.random.default_rng(1).integers(0, 256, (20, 32, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    path = tmp_path / "turned.png"
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1))).save(path, exif=exif)
    np.testing.assert_array_equal(read_image(path), upright)


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    from seglab.errors import BadSampleError

    path = tmp_path / "cut.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8) + 7).save(path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(BadSampleError, match=r"cut\.png: cannot read image"):
        read_image(path)


@pytest.mark.parametrize("kind", ["grey-8bit", "grey-4bit", "grey-transparent", "palette"])
def test_label_pngs_read_as_stored_whichever_decoder(tmp_path: Path, kind: str) -> None:
    """Grey masks go to cv2 (faster), with PIL's values: 4-bit samples stretched alike, a
    transparent value ignored alike. Palette masks (cv2 would give colours) stay PIL's."""
    from seglab.data.io import _png_with_cv2, read_label_png

    ids = np.random.default_rng(0).integers(0, 12, (33, 47)).astype(np.uint8)
    path = tmp_path / "mask.png"
    image = Image.fromarray(ids, "L")
    if kind == "palette":
        image = image.convert("P")
        image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    options = {"grey-4bit": {"bits": 4}, "grey-transparent": {"transparency": 3}}.get(kind, {})
    image.save(path, **options)
    with Image.open(path) as stored:
        expected = np.array(stored)
    assert np.array_equal(expected, ids * 17 if kind == "grey-4bit" else ids)
    mask = read_label_png(path)
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
    with Image.open(path) as stored:
        assert (_png_with_cv2(path, stored) is None) == (kind == "palette")
