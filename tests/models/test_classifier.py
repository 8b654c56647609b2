"""The LightningModule: the loss terms equal their formulas; checkpoints hold plain data."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from fitlab.models.classifier import Classifier
from fitlab.models.loss import balanced_class_weights


def tiny(**kwargs) -> Classifier:
    return Classifier(in_channels=1, image_size=[4, 4], num_classes=3, channels=[2],
                      norm="none", pool="none", head_dropout=0.0,
                      optimizer=partial(torch.optim.SGD, lr=0.1),
                      **kwargs)  # fmt: skip


def test_l1_and_l2_terms_equal_their_formulas() -> None:
    model = tiny(l1=0.01, l2=0.1)
    conv, linear = model.net.features[0][0], model.net.head[-1]
    weights = [conv.weight, linear.weight]  # not the biases
    terms = model.penalties()
    assert terms["l1"].item() == pytest.approx(0.01 * sum(w.abs().sum().item() for w in weights))
    assert terms["l2"].item() == pytest.approx(0.1 * sum((w**2).sum().item() for w in weights))
    assert tiny().penalties() == {}


def test_training_loss_adds_the_penalties_to_the_cross_entropy() -> None:
    import lightning as L

    model = tiny(l1=0.01, l2=0.1)
    x, y = torch.randn(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    model.trainer = L.Trainer(logger=False, enable_progress_bar=False, max_epochs=0)
    model.log = lambda *args, **kwargs: None  # outside a fit loop
    total = model.training_step((x, y), 0)
    ce = torch.nn.functional.cross_entropy(model(x), y)
    expected = ce + sum(model.penalties().values())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_one_rule_picks_what_l1_l2_and_weight_decay_act_on() -> None:
    """Weights only by default; with decay_norms_and_biases, biases and norm layers too."""
    for everything in (False, True):
        model = Classifier(in_channels=1, image_size=[4, 4], num_classes=3, channels=[2], l1=0.01,
                           decay_norms_and_biases=everything)  # fmt: skip
        names = {id(p): n for n, p in model.net.named_parameters()}
        penalised = sorted(names[id(p)] for p in model.penalised)
        expected = sorted(n for n, p in model.net.named_parameters() if everything or p.ndim > 1)
        assert penalised == expected and ("features.0.1.weight" in penalised) == everything
        l1 = 0.01 * sum(p.abs().sum() for n, p in model.net.named_parameters() if n in expected)
        assert model.penalties()["l1"].item() == pytest.approx(l1.item())
        decay = torch.optim.AdamW
        model.optimizer_factory = partial(decay, lr=0.1, weight_decay=0.5)
        groups = model.configure_optimizers().param_groups
        decayed = [names[id(p)] for g in groups if g["weight_decay"] == 0.5 for p in g["params"]]
        assert sorted(decayed) == expected
        assert sum(len(g["params"]) for g in groups) == len(names)


def test_penalty_gradient_shrinks_weights() -> None:
    model = tiny(l2=1.0)
    loss = sum(model.penalties().values())
    loss.backward()
    w = model.net.head[-1].weight
    assert torch.allclose(w.grad, 2 * w.detach())


def test_balanced_weights_match_scikit_learn() -> None:
    counts = [50, 10, 5]
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    assert torch.allclose(balanced_class_weights(counts), torch.tensor(expected).float())
    model = tiny(class_weights="balanced", class_counts=counts)
    assert torch.allclose(model.class_weight, torch.tensor(expected).float())


def test_saved_hyperparameters_are_plain_data() -> None:
    model = tiny(class_names=["a", "b", "c"], class_counts=[1, 2, 3])
    hparams = dict(model.hparams)
    assert "optimizer" not in hparams and "scheduler" not in hparams

    def plain(value) -> bool:
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (bool, int, float, str))

    assert all(plain(v) for v in hparams.values()), hparams


def test_checkpoint_loads_with_weights_only(tmp_path) -> None:
    import lightning as L

    model = tiny(class_names=["a", "b", "c"])
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, max_epochs=0)  # fmt: skip
    trainer.strategy.connect(model)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    restored = Classifier(**ckpt["hyper_parameters"])
    restored.load_state_dict(ckpt["state_dict"])
    x = torch.randn(2, 1, 4, 4)
    model.eval(), restored.eval()
    assert torch.equal(model(x), restored(x))


def test_penalties_are_logged_as_their_own_loss_terms() -> None:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 4, 4), torch.randint(0, 3, (32,)))
    model = tiny(l1=0.01, l2=0.1)
    start = {name: term.item() for name, term in model.penalties().items()}
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, DataLoader(data, batch_size=8))
    logged = trainer.callback_metrics
    end = {name: term.item() for name, term in model.penalties().items()}
    for name in ("l1", "l2"):
        # the epoch mean lies between the first and the last step's value
        low, high = sorted((start[name], end[name]))
        assert low * 0.99 <= logged[f"train/loss_{name}"].item() <= high * 1.01
    assert "train/loss" in logged and "train/loss_l1" in logged


def epoch_lrs(model: Classifier, epochs: int) -> list[float]:
    """The learning rate of each epoch, stepping the scheduler as Lightning does (by epoch)."""
    configured = model.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_a_warm_up_ramps_the_rate_then_hands_over_to_the_scheduler(compose_cfg) -> None:
    from hydra.utils import instantiate

    cfg = compose_cfg("model.warmup_epochs=4", "trainer.max_epochs=10")
    model = instantiate(cfg.model, in_channels=1, image_size=[8, 8], num_classes=3,
                        _convert_="all")  # fmt: skip
    lr = cfg.model.optimizer.lr
    lrs = epoch_lrs(model, 10)
    # lr / 5, 2 lr / 5, ... up to lr at epoch 4; then the cosine over the 6 epochs left.
    assert lrs[:5] == pytest.approx([lr * k / 5 for k in range(1, 6)])
    cosine = [lr * (1 + np.cos(np.pi * t / 6)) / 2 for t in range(6)]
    assert lrs[4:] == pytest.approx(cosine)
    assert cfg.model.scheduler.T_max == 6
    # Without a scheduler, the warm-up alone; without a warm-up, the rate is the scheduler's.
    alone = epoch_lrs(tiny(warmup_epochs=2), 5)
    assert alone == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.1])
    assert isinstance(tiny().configure_optimizers(), torch.optim.SGD)
