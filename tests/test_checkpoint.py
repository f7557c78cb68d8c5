"""Safe checkpoint loading: weights_only, and errors that say what does not fit."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch

from seglab.errors import ConfigError, SeglabError
from seglab.tasks.checkpoint import check_class_count, load_task, read_checkpoint


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint: dict) -> dict:
    return torch.load(tiny_checkpoint["ckpt"], map_location="cpu", weights_only=True)


def test_a_checkpoint_rebuilds_its_task(tiny_checkpoint: dict) -> None:
    task = load_task(tiny_checkpoint["ckpt"], infer={"mode": "slide", "window": 32})
    assert not task.training and task.num_classes == 6
    assert task.infer_settings.mode == "slide" and task.infer_settings.window == (32, 32)
    assert task(torch.zeros(1, 3, 40, 40)).shape == (1, 6, 40, 40)


def test_weights_of_another_class_count_are_refused(ckpt: dict, tmp_path: Path) -> None:
    edited = copy.deepcopy(ckpt)
    edited["hyper_parameters"]["model"]["num_classes"] = 3  # config says 3, weights hold 6
    torch.save(edited, tmp_path / "x.ckpt")
    with pytest.raises(ConfigError) as error:
        load_task(tmp_path / "x.ckpt")
    message = str(error.value)
    assert "do not fit its own model" in message
    assert (
        "net.segmentation_head.0.weight: checkpoint [6, 16, 3, 3], model [3, 16, 3, 3]" in message
    )


def test_another_encoder_is_refused_with_the_difference(tiny_checkpoint: dict, ckpt) -> None:
    model = {**ckpt["hyper_parameters"]["model"], "encoder": "resnet34"}
    with pytest.raises(ConfigError, match="model.encoder: checkpoint 'resnet18', given 'resnet34'"):
        load_task(tiny_checkpoint["ckpt"], model=model)


def test_data_with_other_classes_is_refused(ckpt: dict) -> None:
    with pytest.raises(ConfigError, match=r"predicts 6 classes \(background, disc"):
        check_class_count(ckpt["hyper_parameters"], {"name": "voc", "num_classes": 21}, Path("c"))
    check_class_count(ckpt["hyper_parameters"], {"name": "synthetic", "num_classes": 6}, Path("c"))


class _Payload:
    def __reduce__(self):  # what an unsafe pickle would run on load
        return (print, ("pwned",))


def test_unsafe_or_foreign_files_are_refused(tmp_path: Path) -> None:
    with (tmp_path / "evil.ckpt").open("wb") as handle:
        pickle.dump({"state_dict": {}, "x": _Payload()}, handle, protocol=2)
    with pytest.raises(SeglabError, match="cannot be opened safely"):
        read_checkpoint(tmp_path / "evil.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(SeglabError, match="not a seglab checkpoint"):
        read_checkpoint(tmp_path / "plain.ckpt")
    with pytest.raises(SeglabError, match="no such file"):
        read_checkpoint(tmp_path / "missing.ckpt")


def test_a_checkpoint_records_the_precision_it_validated_at(ckpt: dict) -> None:
    from seglab.resolvers import auto_precision
    from seglab.tasks.checkpoint import checkpoint_precision

    assert ckpt["seglab_precision"] == "32-true"  # the fixture trains at 32-true on every CPU
    assert checkpoint_precision(ckpt, "cpu") == "32-true"
    older = {k: v for k, v in ckpt.items() if k != "seglab_precision"}
    assert checkpoint_precision(older, "cpu") == auto_precision("cpu")  # before it was recorded


@pytest.mark.parametrize(
    ("precision", "device", "dtype"),
    [
        ("32-true", "cpu", torch.float32),
        ("bf16-mixed", "cpu", torch.bfloat16),
        ("16-mixed", "cpu", torch.bfloat16),  # as Lightning's Trainer runs it on a CPU
    ],
)
def test_predict_runs_at_lightnings_precision(precision: str, device: str, dtype) -> None:
    from seglab.inference.precision import precision_plugin

    layer = torch.nn.Conv2d(3, 2, 1)
    with precision_plugin(precision, device).forward_context():
        assert layer(torch.zeros(1, 3, 4, 4)).dtype == dtype


def test_unknown_precision_is_named() -> None:
    from seglab.inference.precision import precision_plugin

    with pytest.raises(ConfigError, match="precision='8-mixed'"):
        precision_plugin("8-mixed", "cpu")
