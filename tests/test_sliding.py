"""Sliding-window inference: exact where it must be, blended correctly, memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from seglab.errors import ConfigError
from seglab.inference import InferSettings, infer_logits, slide_inference
from seglab.inference.sliding import window_starts
from seglab.tasks import SemanticSegmentationTask

DATA = {
    "name": "synthetic", "num_classes": 3, "class_names": ["a", "b", "c"],
    "palette": [[0, 0, 0], [1, 1, 1], [2, 2, 2]], "ignore_index": 255, "in_channels": 3,
    "mean": [0.5] * 3, "std": [0.25] * 3, "image_size": 64,
}  # fmt: skip


@pytest.fixture(scope="module")
def task() -> SemanticSegmentationTask:
    torch.manual_seed(0)
    model = {"_target_": "seglab.models.build_smp_model", "arch": "unet", "encoder": "resnet18",
             "encoder_weights": None, "in_channels": 3, "num_classes": 3}  # fmt: skip
    loss = {"_target_": "torch.nn.CrossEntropyLoss", "ignore_index": 255}
    return SemanticSegmentationTask(model, loss, {}, {}, DATA).eval()


@pytest.mark.parametrize("blend", ["gaussian", "mean"])
def test_a_window_covering_the_image_is_whole_image_inference(task, blend: str) -> None:
    image = torch.randn(3, 70, 90)
    whole = task(image[None])[0]
    for window in ((70, 90), 128):  # exactly the image, and larger (clipped to it)
        slid = slide_inference(task, image, 3, window, 32, blend=blend, window_batch=2)
        assert slid.shape == (3, 70, 90) and slid.dtype == torch.float32
        torch.testing.assert_close(slid, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("blend", ["gaussian", "mean"])
def test_overlapping_windows_are_normalised(blend: str) -> None:
    # A per-pixel model gives every window the same logits at a pixel: any correct weighted
    # average must reproduce whole-image inference exactly, whatever the overlap pattern.
    torch.manual_seed(0)
    net = nn.Conv2d(3, 5, kernel_size=1)
    image = torch.randn(3, 101, 77)
    with torch.no_grad():
        whole = net(image[None])[0]
    slid = slide_inference(net, image, 5, (32, 24), (20, 13), blend=blend, window_batch=3)
    torch.testing.assert_close(slid, whole, atol=1e-5, rtol=1e-5)


def test_windows_cover_every_pixel() -> None:
    assert window_starts(100, 32, 20) == [0, 20, 40, 60, 68]
    assert window_starts(64, 64, 32) == [0]
    assert window_starts(10, 64, 32) == [0]
    for length, window, stride in ((1000, 96, 64), (97, 32, 32), (33, 32, 1)):
        starts = window_starts(length, window, stride)
        covered = set()
        for s in starts:
            assert 0 <= s <= length - window
            covered.update(range(s, s + window))
        assert covered == set(range(length))


def test_window_batch_does_not_change_the_result(task) -> None:
    image = torch.randn(3, 96, 160)
    one = slide_inference(task, image, 3, 64, 40, window_batch=1)
    many = slide_inference(task, image, 3, 64, 40, window_batch=7)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-5)


def test_class_maps_batch_images_of_one_size_up_to_the_val_batch_size(task, monkeypatch) -> None:
    # The overlays' class maps: one inference per batch of same-sized images, not per image.
    sizes = [(64, 64), (70, 90), (64, 64), (64, 64), (70, 90)]
    images = [torch.randn(3, h, w) for h, w in sizes]
    alone = [task.infer(image[None])[0].argmax(0) for image in images]
    batches = []
    infer = task.infer
    monkeypatch.setattr(task, "infer", lambda batch: batches.append(len(batch)) or infer(batch))
    monkeypatch.setitem(task.hparams["data"], "val_batch_size", 2)
    maps = task.class_maps(images)
    assert sorted(batches) == [1, 2, 2]  # 64²: 2 + 1; 70×90: 2
    for got, want in zip(maps, alone, strict=True):
        assert got.shape == want.shape
        assert torch.equal(got, want)


def test_infer_modes_and_tta(task) -> None:
    images = torch.randn(2, 3, 64, 64)
    whole = InferSettings.from_config({"mode": "whole"}, DATA)
    assert whole.window == (64, 64) and whole.stride == (43, 43)  # the training crop, 2/3 step
    torch.testing.assert_close(infer_logits(task, images, 3, whole), task(images))
    auto = InferSettings.from_config({"mode": "auto"}, DATA)
    assert not auto.slides(128, 128) and auto.slides(129, 64)
    tta = InferSettings.from_config({"tta": True, "flips": ["horizontal", "vertical"]}, DATA)
    expected = (task(images) + task(images.flip(-1)).flip(-1) + task(images.flip(-2)).flip(-2)) / 3
    torch.testing.assert_close(infer_logits(task, images, 3, tta), expected, atol=1e-5, rtol=1e-5)
    flip_model = infer_logits(task, images.flip(-1), 3, tta).flip(-1)
    hflip_only = InferSettings.from_config({"tta": True, "flips": ["horizontal"]}, DATA)
    torch.testing.assert_close(  # horizontal-flip TTA is equivariant to a horizontal flip
        infer_logits(task, images, 3, hflip_only),
        infer_logits(task, images.flip(-1), 3, hflip_only).flip(-1),
        atol=1e-5,
        rtol=1e-5,
    )
    assert flip_model.shape == images[:, :3].shape


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"mode": "tiles"}, "infer.mode='tiles'"),
        ({"blend": "max"}, "infer.blend='max'"),
        ({"window": 32, "stride": 48}, "exceeds infer.window"),
        ({"flips": ["diagonal"]}, "infer.flips"),
        ({"window_size": 3}, "unknown infer keys ['window_size']"),
        ({"window": [0, 4]}, "infer.window"),
    ],
)
def test_bad_infer_config_is_named(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        InferSettings.from_config(cfg, DATA)


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, threading, time
    import psutil, torch
    from seglab.inference import slide_inference
    torch.set_num_threads(1)
    side, classes, window, stride = 2048, 8, 128, 32
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, classes, 3, padding=1)
    image = torch.randn(3, side, side)
    slide_inference(net, image[:, :256, :256], classes, window, stride)  # warm the allocator
    process, peak, done = psutil.Process(), [0], threading.Event()
    def sample():  # RSS every 2 ms while inference runs (torch releases the GIL)
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)
    before = process.memory_info().rss
    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    out = slide_inference(net, image, classes, window, stride, window_batch=4)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    windows = len(range(0, side - window + 1, stride)) ** 2
    json.dump({"extra": max(peak[0], process.memory_info().rss) - before, "image": image.nbytes,
               "logits": out.nbytes, "windows": windows,
               "window_logits": classes * window * window * 4, "seconds": seconds}, sys.stdout)
    """
)


@pytest.mark.slow
def test_peak_memory_is_bounded_by_the_window_batch() -> None:
    """2048² image, 3721 windows: the extra peak is the logits buffer, not the window count."""
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True, check=True
    )
    m = json.loads(proc.stdout)
    all_windows = m["windows"] * m["window_logits"]  # what keeping every window would cost
    assert all_windows > 10 * m["logits"]
    assert m["extra"] > 0.5 * m["logits"], m  # the measurement sees the output buffer ...
    assert m["extra"] < 1.5 * m["logits"] + 64 * 2**20, m  # ... and little else
    print(
        f"sliding 2048²: extra peak {m['extra'] / 2**20:.0f} MiB for "
        f"{m['logits'] / 2**20:.0f} MiB of logits, {m['windows']} windows, {m['seconds']:.1f} s"
    )


def test_validation_uses_the_infer_config(tmp_path) -> None:
    """`train.py infer=slide ...` reaches the task; its validation scores sliding-window logits."""
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    from seglab.run.build import build_task
    from tests.conftest import compose_train

    cfg = compose_train(["infer=slide", "infer.window=48", "infer.stride=24"], output_dir=tmp_path)
    task = build_task(OmegaConf.to_container(cfg, resolve=True)).eval()
    assert task.infer_settings.mode == "slide" and task.infer_settings.window == (48, 48)
    torch.manual_seed(0)
    batch = {"image": torch.randn(2, 3, 80, 96), "mask": torch.randint(0, 6, (2, 80, 96))}
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, precision="32-true")  # fmt: skip
    samples = [{"image": batch["image"][i], "mask": batch["mask"][i]} for i in range(2)]
    trainer.validate(task, dataloaders=DataLoader(samples, batch_size=2), verbose=False)
    slid = torch.stack([slide_inference(task, im, 6, 48, 24) for im in batch["image"]])
    expected = torch.bincount(
        (batch["mask"] * 6 + slid.argmax(dim=1)).flatten(), minlength=36
    ).reshape(6, 6)
    torch.testing.assert_close(task.last_confusion("val").long(), expected)
    with torch.no_grad():  # and whole-image inference would have scored differently
        whole = task(batch["image"]).argmax(dim=1)
    assert (whole != slid.argmax(dim=1)).any()
