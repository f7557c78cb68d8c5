"""ConfusionMatrix and segmentation_scores: against torchmetrics and a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
)

from seglab.metrics import ConfusionMatrix, class_ids, segmentation_scores

IGNORE = 255
NAMES4 = ["road", "car", "tree", "sky"]


def _random_batches(num_classes: int, n: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        logits = torch.randn(2, num_classes, 8, 8, generator=gen)
        target = torch.randint(0, num_classes, (2, 8, 8), generator=gen)
        target[torch.rand(2, 8, 8, generator=gen) < 0.2] = IGNORE
        batches.append((logits, target))
    return batches


def test_matches_torchmetrics_over_several_updates():
    c = 4
    ours = ConfusionMatrix(c, ignore_index=IGNORE)
    jaccard = MulticlassJaccardIndex(c, average="macro", ignore_index=IGNORE)
    f1 = MulticlassF1Score(c, average="macro", ignore_index=IGNORE)
    micro_f1 = MulticlassF1Score(c, average="micro", ignore_index=IGNORE)
    accuracy = MulticlassAccuracy(c, average="micro", ignore_index=IGNORE)
    for logits, target in _random_batches(c):
        ours.update(logits, target)
        for metric in (jaccard, f1, micro_f1, accuracy):
            metric.update(logits, target)
    matrix = ours.compute()
    assert (matrix.sum(0) + matrix.sum(1) > 0).all(), "every class must be present for this test"
    scores = segmentation_scores(matrix, NAMES4)
    assert scores["mIoU"] == pytest.approx(jaccard.compute().item(), abs=1e-6)
    assert scores["mF1"] == pytest.approx(f1.compute().item(), abs=1e-6)
    assert scores["aAcc"] == pytest.approx(micro_f1.compute().item(), abs=1e-6)
    assert scores["aAcc"] == pytest.approx(accuracy.compute().item(), abs=1e-6)


def test_hand_computed_case():
    # Class 3 is absent from labels and (valid) predictions; class 2 is predicted, never labelled.
    label = torch.tensor([[0, 0, 0, 0, 1, 1, 1, IGNORE, IGNORE, 7]])
    pred = torch.tensor([[0, 0, 0, 1, 1, 1, 2, 3, 0, 3]])
    metric = ConfusionMatrix(4, ignore_index=IGNORE)
    metric.update(pred, label)
    expected = torch.tensor([[3, 1, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert torch.equal(metric.compute(), expected)
    assert metric.compute().dtype == torch.long

    s = segmentation_scores(metric.compute(), NAMES4)
    # I = [3, 2, 0, 0], P = [3, 3, 1, 0], L = [4, 3, 0, 0], U = [4, 4, 1, 0]
    assert s["IoU/road"] == pytest.approx(3 / 4)
    assert s["IoU/car"] == pytest.approx(2 / 4)
    assert s["IoU/tree"] == 0.0
    assert math.isnan(s["IoU/sky"])
    assert s["mIoU"] == pytest.approx((3 / 4 + 2 / 4 + 0) / 3)
    assert math.isnan(s["Acc/tree"]) and math.isnan(s["Acc/sky"])
    assert s["mAcc"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert s["F1/road"] == pytest.approx(6 / 7)
    assert s["F1/tree"] == 0.0
    assert math.isnan(s["F1/sky"])
    assert s["mF1"] == pytest.approx((6 / 7 + 4 / 6 + 0) / 3)
    assert s["aAcc"] == pytest.approx(5 / 7)
    assert s["FWIoU"] == pytest.approx(4 / 7 * 3 / 4 + 3 / 7 * 2 / 4)


def test_logits_equal_argmax():
    c = 4
    a, b = ConfusionMatrix(c), ConfusionMatrix(c)
    for logits, target in _random_batches(c, n=2, seed=1):
        a.update(logits, target)
        b.update(logits.argmax(1), target)
    assert torch.equal(a.compute(), b.compute())


def test_reset():
    metric = ConfusionMatrix(4)
    for logits, target in _random_batches(4, n=1):
        metric.update(logits, target)
    assert metric.compute().sum() > 0
    metric.reset()
    assert metric.matrix.sum() == 0
    label = torch.tensor([[1, 2]])
    metric.update(torch.tensor([[1, 1]]), label)
    assert metric.compute().sum() == 2


def test_ignore_index_none_and_inside_range():
    label = torch.tensor([[0, 1, 2]])
    pred = torch.tensor([[0, 1, 1]])
    assert ConfusionMatrix(3, ignore_index=None)(pred, label).sum() == 3
    # An ignore index inside [0, C) (e.g. "ignore background") drops that class's pixels.
    assert ConfusionMatrix(3, ignore_index=0)(pred, label).sum() == 2


def test_bad_inputs_raise():
    metric = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="channels"):
        metric.update(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        metric.update(torch.tensor([[0, 5]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="integer"):
        metric.update(torch.rand(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_deterministic_flag_restored():
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        metric = ConfusionMatrix(3)
        metric.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, 1]]))
        assert metric.compute().sum() == 3
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_state_is_summed_across_processes():
    metric = ConfusionMatrix(3)
    assert metric._reductions["matrix"].__name__ == "dim_zero_sum"
    assert metric.full_state_update is False and metric.is_differentiable is False


def test_score_keys_exact():
    scores = segmentation_scores(torch.eye(3, dtype=torch.long), ["a", "b", "c"])
    expected = {"aAcc", "mIoU", "mAcc", "mF1", "FWIoU"}
    expected |= {f"{k}/{n}" for k in ("IoU", "F1", "Acc") for n in "abc"}
    assert set(scores) == expected
    assert all(type(v) is float for v in scores.values())
    assert scores["mIoU"] == 1.0 and scores["FWIoU"] == 1.0


def test_class_name_count_must_match():
    with pytest.raises(ValueError, match="class names"):
        segmentation_scores(torch.zeros(3, 3, dtype=torch.long), ["a", "b"])


def test_class_ids_is_argmax_for_any_layout_and_ties():
    logits = torch.randn(3, 5, 7, 9)
    logits[0, :, 0, 0] = 1.0  # a tie over every class: the first one wins, as with argmax
    logits[1, 2:4, 1, 1] = 9.0
    for layout in (torch.contiguous_format, torch.channels_last):
        ids = class_ids(logits.contiguous(memory_format=layout))
        assert torch.equal(ids, logits.argmax(dim=1))
    assert ids[0, 0, 0] == 0 and ids[1, 1, 1] == 2
