"""Boundary (Kervadec) and Hausdorff DT losses on hand-computed cases; the weight ramp; and a
few steps of training with each boundary-aware loss config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from seglab.cli.train import train
from seglab.errors import ConfigError
from seglab.losses import BoundaryLoss, CompoundLoss, CrossEntropyLoss, HausdorffDTLoss, Ramp
from seglab.losses.distance import edge_distance, signed_distance
from tests.conftest import compose_train, new_store, tiny_run

IGNORE = 255
SIZE = 32
CONFIDENT = 30.0  # logits scale: softmax of CONFIDENT * one-hot is one-hot to float precision


def _square(shift: int = 0, side: int = 12, top: int = 10, left: int = 8) -> torch.Tensor:
    """A 1×H×W target (or prediction): background 0, a square of class 1 moved `shift` px right."""
    mask = torch.zeros(1, SIZE, SIZE, dtype=torch.long)
    mask[0, top : top + side, left + shift : left + shift + side] = 1
    return mask


def _confident(labels: torch.Tensor, num_classes: int = 2) -> torch.Tensor:
    """Logits whose softmax is the one-hot of `labels`."""
    one_hot = torch.nn.functional.one_hot(labels, num_classes).permute(0, 3, 1, 2)
    return CONFIDENT * one_hot.float()


def test_signed_distance_by_hand() -> None:
    """A 1×7 row with class pixels at 1..5: outside 1, edge 0, then −1, −2 towards the middle."""
    row = np.array([[0, 1, 1, 1, 1, 1, 0]], dtype=bool)
    np.testing.assert_allclose(signed_distance(row)[0], [1, 0, -1, -2, -1, 0, 1])
    np.testing.assert_allclose(edge_distance(row)[0], [1, 1, 2, 3, 2, 1, 1])
    assert not signed_distance(np.zeros((3, 3), dtype=bool)).any()  # absent class: no pull


def test_boundary_loss_by_hand() -> None:
    """Two classes on a 1×4 image, labels [0, 0, 1, 1]: φ_0 = [−1, 0, 1, 2], φ_1 = [2, 1, 0, −1].
    Predicting everything class 0 costs the mean of φ_0 over pixels and 2 classes: 2/8."""
    target = torch.tensor([[[0, 0, 1, 1]]])
    all_zero = _confident(torch.zeros_like(target))
    assert BoundaryLoss()(all_zero, target).item() == pytest.approx(2 / 8)
    exact = BoundaryLoss()(_confident(target), target).item()
    assert exact == pytest.approx((-1 + 0 + 0 - 1) / 8)


@pytest.mark.parametrize("loss_fn", [BoundaryLoss(IGNORE), HausdorffDTLoss(IGNORE)])
def test_the_ground_truth_is_the_minimum(loss_fn: torch.nn.Module) -> None:
    target = _square()
    best = loss_fn(_confident(target), target)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        other = loss_fn(torch.randn(1, 2, SIZE, SIZE, generator=gen) * 3, target)
        assert best < other
    for shift in (1, 2):
        assert best < loss_fn(_confident(_square(shift)), target)


def test_boundary_minimum_is_the_pixelwise_least_distance() -> None:
    """sum_x min_k φ_k(x) is the least any probabilities can reach; the truth reaches it."""
    target = _square()
    phi = np.stack([signed_distance(target[0].numpy() == k) for k in range(2)])
    floor = phi.min(axis=0).sum() / (SIZE * SIZE * 2)
    got = BoundaryLoss()(_confident(target), target).item()
    assert got == pytest.approx(floor, abs=1e-6)


@pytest.mark.parametrize("loss_fn", [BoundaryLoss(IGNORE), HausdorffDTLoss(IGNORE)])
def test_a_larger_shift_scores_worse(loss_fn: torch.nn.Module) -> None:
    target = _square()
    values = [loss_fn(_confident(_square(k)), target).item() for k in range(6)]
    assert values == sorted(values) and len(set(values)) == len(values), values


@pytest.mark.parametrize("loss_fn", [BoundaryLoss(IGNORE), HausdorffDTLoss(IGNORE)])
def test_ignored_pixels_change_nothing(loss_fn: torch.nn.Module) -> None:
    """A void band along the square's edge (as VOC's): the prediction there does not count."""
    target = _square()
    inner = _square(side=8, top=12, left=10)
    void = (target == 1) & (inner == 0)
    target = torch.where(void, torch.tensor(IGNORE), inner)
    logits = torch.randn(1, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    noisy = torch.where(void.unsqueeze(1), 20 * torch.randn_like(logits), logits)
    logits.requires_grad_(True)
    value = loss_fn(logits, target)
    value.backward()
    torch.testing.assert_close(loss_fn(noisy, target), value.detach())
    assert logits.grad[void.unsqueeze(1).expand_as(logits)].abs().max() == 0


def test_ramp_is_linear_in_progress() -> None:
    ramp = Ramp(start=0.01, end=1.0, until=0.5)
    assert ramp.factor(0.0) == pytest.approx(0.01)
    assert ramp.factor(0.25) == pytest.approx(0.505)
    assert ramp.factor(0.5) == ramp.factor(0.9) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="until"):
        Ramp.from_config("boundary", {"start": 0.1, "until": 0})
    with pytest.raises(ConfigError, match="unknown ramp keys"):
        Ramp.from_config("boundary", {"start": 0.1, "length": 3})


def test_compound_follows_the_ramp() -> None:
    ce, boundary = CrossEntropyLoss(IGNORE), BoundaryLoss(IGNORE)
    compound = CompoundLoss(
        [
            {"weight": 1.0, "loss": ce},
            {"weight": 2.0, "loss": boundary, "ramp": {"start": 0.0, "end": 1.0}},
        ]
    )
    target = _square()
    logits = torch.randn(1, 2, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    assert compound.progress == 1.0  # outside training: the finished run's weights
    for progress in (0.0, 0.3, 1.0):
        compound.set_progress(progress)
        expected = ce(logits, target) + 2.0 * progress * boundary(logits, target)
        torch.testing.assert_close(compound(logits, target), expected)
    assert compound.ramped_weights() == {"boundary": 2.0}


# About the loss in the training loop, not the network: the stub network.
TRAIN = tiny_run(train_batches=3, val_batches=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


@pytest.mark.slow
def test_boundary_loss_trains_with_its_ramp(
    tiny_synthetic_root: Path, store: str, tmp_path: Path
) -> None:
    """A few steps of `train.py loss=ce_boundary`; the boundary weight is logged, rising each step."""
    cfg = compose_train(
        ["loss=ce_boundary", f"data.root={tiny_synthetic_root}", f"logger.tracking_uri={store}",
         *TRAIN, "trainer.log_every_n_steps=1"],
        output_dir=tmp_path / "out",
    )  # fmt: skip
    miou = train(cfg)
    assert miou is not None and np.isfinite(miou)
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    history = client.get_metric_history(run.info.run_id, "train/loss_weight/boundary")
    weights = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert weights == pytest.approx([0.01, 0.505, 1.0])  # 3 steps: 0.01 → 1 linearly
    assert np.isfinite(run.data.metrics["train/loss"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [  # README's commands
        ["loss=dice_boundary", "loss.terms.1.ramp.until=0.5"],
        ["loss=dice_hausdorff", "loss.terms.1.loss.classes=[1,2,3,4,5]"],
    ],
)
def test_other_boundary_losses_train(
    overrides: list[str], tiny_synthetic_root: Path, tmp_path: Path
) -> None:
    """One batch of training and validation each (fast_dev_run: nothing recorded)."""
    cfg = compose_train(
        [*overrides, f"data.root={tiny_synthetic_root}", *TRAIN, "trainer.fast_dev_run=true"],
        output_dir=tmp_path / "out",
    )
    assert cfg.loss.terms[1].ramp.until == 0.5 or cfg.loss.terms[1].loss.classes == [1, 2, 3, 4, 5]
    train(cfg)
