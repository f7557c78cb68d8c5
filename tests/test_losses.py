"""Loss configs instantiate, respect the ignore index, and combine as weighted sums."""

from __future__ import annotations

import re
from pathlib import Path

import hydra.utils
import pytest
import segmentation_models_pytorch.losses as smp_losses
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from seglab.errors import ConfigError
from seglab.losses import CompoundLoss, CrossEntropyLoss

IGNORE = 255
NUM_CLASSES = 5
LOSS_DIR = Path(__file__).resolve().parents[1] / "conf" / "loss"
LOSS_NAMES = sorted(p.stem for p in LOSS_DIR.glob("*.yaml"))


def _load(name: str, **overrides):
    cfg = OmegaConf.create(
        {
            "data": {"ignore_index": IGNORE, "num_classes": NUM_CLASSES},
            "loss": OmegaConf.load(LOSS_DIR / f"{name}.yaml"),
        }
    )
    for key, value in overrides.items():
        OmegaConf.update(cfg, f"loss.{key}", value)
    return hydra.utils.instantiate(cfg.loss, _convert_="all")  # as the task does


def _batch(seed: int = 0, ignored: float = 0.25):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, NUM_CLASSES, 16, 16, generator=gen)
    target = torch.randint(0, NUM_CLASSES, (2, 16, 16), generator=gen)
    target[torch.rand(2, 16, 16, generator=gen) < ignored] = IGNORE
    return logits, target


def _loss_and_grad(loss_fn, logits, target):
    logits = logits.clone().requires_grad_(True)
    value = loss_fn(logits, target)
    value.backward()
    return value.detach(), logits.grad


def test_every_choice_is_present():
    expected = {"ce", "dice", "focal", "jaccard", "lovasz", "tversky", "focal_tversky", "ce_dice"}
    assert expected <= set(LOSS_NAMES)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_config_composes_with_hydra(name):
    with initialize_config_dir(config_dir=str(LOSS_DIR.parent), version_base="1.3"):
        cfg = compose(overrides=[f"+loss={name}", f"+data.ignore_index={IGNORE}"])
    loss_fn = hydra.utils.instantiate(cfg.loss)
    assert getattr(loss_fn, "ignore_index", None) == IGNORE or all(
        t.ignore_index == IGNORE for t in loss_fn.terms.values()
    )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_forward_backward_finite(name):
    loss_fn = _load(name)
    assert name == "ce" or isinstance(loss_fn, CompoundLoss)
    value, grad = _loss_and_grad(loss_fn, *_batch())
    assert value.dim() == 0 and torch.isfinite(value)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_ignored_pixels_do_not_matter(name):
    loss_fn = _load(name)
    logits, target = _batch(seed=1)
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    noisy = torch.where(ignored, 10 * torch.randn_like(logits), logits)
    value, grad = _loss_and_grad(loss_fn, logits, target)
    value_noisy, grad_noisy = _loss_and_grad(loss_fn, noisy, target)
    torch.testing.assert_close(value_noisy, value)
    torch.testing.assert_close(grad_noisy, grad)
    assert grad[ignored].abs().max() == 0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_all_ignored_batch_gives_zero_not_nan(name):
    loss_fn = _load(name)
    logits, target = _batch()
    value, grad = _loss_and_grad(loss_fn, logits, torch.full_like(target, IGNORE))
    assert value.dim() == 0 and value.item() == 0.0
    assert torch.equal(grad, torch.zeros_like(grad))


def test_ce_matches_torch_mean_with_weights_and_smoothing():
    logits, target = _batch(seed=2)
    weights = [1.0, 2.0, 0.5, 3.0, 1.5]
    ours = CrossEntropyLoss(IGNORE, class_weights=weights, label_smoothing=0.1)(logits, target)
    ref = F.cross_entropy(
        logits, target, weight=torch.tensor(weights), ignore_index=IGNORE, label_smoothing=0.1
    )
    torch.testing.assert_close(ours, ref)


def test_class_weights_change_ce():
    logits, target = _batch(seed=3)
    plain = _load("ce")(logits, target)
    weighted = _load("ce", class_weights=[1.0, 5.0, 1.0, 1.0, 0.2])(logits, target)
    assert not torch.allclose(plain, weighted)


def test_class_weights_are_a_buffer_and_checked():
    loss_fn = CrossEntropyLoss(class_weights=[1.0, 2.0])
    assert "class_weights" in dict(loss_fn.named_buffers())
    assert loss_fn.to(torch.float64).class_weights.dtype == torch.float64
    with pytest.raises(ValueError, match="loss.class_weights"):
        loss_fn(*_batch())


def test_label_smoothing_changes_ce():
    logits, target = _batch(seed=4)
    assert not torch.allclose(
        _load("ce")(logits, target), _load("ce", label_smoothing=0.1)(logits, target)
    )


def test_compound_is_weighted_sum_of_terms():
    ce = CrossEntropyLoss(IGNORE)
    dice = smp_losses.DiceLoss("multiclass", ignore_index=IGNORE)
    compound = CompoundLoss([{"weight": 0.3, "loss": ce}, {"weight": 2.0, "loss": dice}])
    logits, target = _batch(seed=5)
    total = compound(logits, target)
    torch.testing.assert_close(total, 0.3 * ce(logits, target) + 2.0 * dice(logits, target))
    assert set(compound.last_terms) == {"cross_entropy", "dice"}
    torch.testing.assert_close(compound.last_terms["dice"], dice(logits, target))


def test_compound_accepts_mapping_and_omegaconf():
    ce = CrossEntropyLoss(IGNORE)
    compound = CompoundLoss(
        {"ce": {"weight": 1.0, "loss": ce}, "again": {"weight": 0.5, "loss": ce}}
    )
    logits, target = _batch(seed=6)
    torch.testing.assert_close(compound(logits, target), 1.5 * ce(logits, target))
    assert set(compound.last_terms) == {"ce", "again"}
    # Hydra passes ListConfig/DictConfig holding the instantiated modules.
    listed = hydra.utils.instantiate(
        OmegaConf.create(
            {
                "_target_": "seglab.losses.CompoundLoss",
                "terms": [{"weight": 2.0, "loss": {"_target_": "seglab.losses.CrossEntropyLoss"}}],
            }
        )
    )
    torch.testing.assert_close(listed(logits, target), 2.0 * ce(logits, target))


def test_compound_rejects_uninstantiated_loss():
    terms = OmegaConf.create([{"weight": 1.0, "loss": {"_target_": "seglab.losses.X"}}])
    with pytest.raises(TypeError, match="_target_"):
        CompoundLoss(terms)


def test_compound_rejects_bad_terms():
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match="empty"):
        CompoundLoss([])
    with pytest.raises(ValueError, match=">= 0"):
        CompoundLoss([{"weight": -1.0, "loss": ce}])


def test_compound_moves_term_buffers_with_to():
    compound = _load("ce_dice")
    compound.terms["cross_entropy"].class_weights = torch.ones(NUM_CLASSES)
    compound.to(torch.float64)
    assert compound.terms["cross_entropy"].class_weights.dtype == torch.float64


WEIGHTS = [1.0, 5.0, 0.5, 2.0, 0.2]


def test_compound_class_weights_reach_each_term_that_takes_them():
    """ce_dice weighted: CE is torch's weighted CE, Dice smp's class-weighted mean; the sum moves."""
    logits, target = _batch(seed=7)
    plain = _load("ce_dice")
    weighted = _load("ce_dice", class_weights=WEIGHTS)
    assert weighted.weighted_terms == ("cross_entropy", "dice")
    total = weighted(logits, target)
    assert not torch.allclose(total, plain(logits, target))
    ref_ce = F.cross_entropy(logits, target, weight=torch.tensor(WEIGHTS), ignore_index=IGNORE)
    torch.testing.assert_close(weighted.last_terms["cross_entropy"], ref_ce)
    dice = smp_losses.DiceLoss("multiclass", ignore_index=IGNORE, class_weights=WEIGHTS)
    torch.testing.assert_close(weighted.last_terms["dice"], dice(logits, target))
    torch.testing.assert_close(total, ref_ce + dice(logits, target))
    # The CE weights stay a buffer of the term: they follow .to() and the checkpoint.
    assert "terms.cross_entropy.class_weights" in dict(weighted.named_buffers())


def test_focal_class_weights_are_smps_weighted_mean():
    logits, target = _batch(seed=8)
    weighted = _load("focal", class_weights=WEIGHTS)(logits, target)
    ref = smp_losses.FocalLoss("multiclass", gamma=2.0, ignore_index=IGNORE, class_weights=WEIGHTS)
    torch.testing.assert_close(weighted, ref(logits, target))
    assert not torch.allclose(weighted, _load("focal")(logits, target))


def test_a_loss_that_cannot_weigh_classes_says_so():
    with pytest.raises(InstantiationException) as raised:  # Hydra wraps it; the CLI unwraps it
        _load("lovasz", class_weights=WEIGHTS)
    assert isinstance(raised.value.__cause__, ConfigError)
    assert re.search(
        r"(?s)loss.class_weights.*lovasz.*class_weights=null", str(raised.value.__cause__)
    )
    assert _load("lovasz").class_weights is None  # unweighted: fine


def test_compound_class_weights_are_checked():
    ce = CrossEntropyLoss(IGNORE)
    with pytest.raises(ConfigError, match="auto"):  # auto is train.py's to resolve
        CompoundLoss([{"loss": ce}], class_weights="auto")
    with pytest.raises(ConfigError, match=">= 0"):
        CompoundLoss([{"loss": ce}], class_weights=[1.0, -1.0])
    with pytest.raises(ConfigError, match="both"):  # given twice: which one would win?
        CompoundLoss([{"loss": CrossEntropyLoss(class_weights=WEIGHTS)}], class_weights=WEIGHTS)
    too_few = CompoundLoss([{"loss": CrossEntropyLoss(IGNORE)}], class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="loss.class_weights has 2 entries"):
        too_few(*_batch())
