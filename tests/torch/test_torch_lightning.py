"""BoundCallback in a real lightning.Trainer on the CPU: its records reach the trainer's logger."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")
import lightning  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

import structdrop.torch as sdt  # noqa: E402
from structdrop.torch.lightning import BoundCallback  # noqa: E402


class Model(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU())
        self.drop = sdt.DropBlock1d(5, theta=0.5, overlapping=False)
        self.last = torch.nn.Linear(10, 3)

    def features(self, x):
        return self.body(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.last(self.drop(self.features(x)))
        return (out - torch.nn.functional.one_hot(y, 3)).square().sum(1).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _loader():
    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(64, 6, generator=gen), torch.randint(0, 3, (64,), generator=gen)
    )
    return torch.utils.data.DataLoader(data, batch_size=16)


def _trainer(tmp_path, cb, **options):
    options.setdefault("logger", False)
    return lightning.Trainer(
        accelerator="cpu",
        callbacks=[cb],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        **options,
    )


def test_callback_logs_through_the_trainer(tmp_path):
    torch.manual_seed(0)
    model = Model()
    cb = BoundCallback("features", "last", "drop", num_classes=3, record_every=2)
    logger = CSVLogger(str(tmp_path), name="run")
    trainer = _trainer(tmp_path, cb, max_steps=6, logger=logger)
    trainer.fit(model, _loader())
    history = cb.monitor.history
    assert [r.step for r in history] == [2, 4, 6]
    for r in history:
        assert r.objective >= r.feature_lower_bound * (1 - 1e-9)
        assert r.feature_lower_bound >= r.lower_bound * (1 - 1e-9)
    # the same record from a fresh monitor on the trained network
    fresh = sdt.BoundMonitor(model.features, model.last, model.drop, _loader(), num_classes=3)
    assert np.isclose(fresh.evaluate().objective, history[-1].objective, rtol=1e-12)
    logger.save()
    text = (tmp_path / "run" / "version_0" / "metrics.csv").read_text()
    header, *rows = text.strip().splitlines()
    columns = header.split(",")
    for name in ("objective", "lower_bound", "feature_lower_bound", "relative_gap"):
        assert f"structdrop/{name}" in columns
    col = columns.index("structdrop/objective")
    logged = [float(row.split(",")[col]) for row in rows if row.split(",")[col]]
    assert np.allclose(logged, [r.objective for r in history], rtol=1e-12)


def test_callback_with_modules_and_an_explicit_loader(tmp_path):
    torch.manual_seed(1)
    model = Model()
    cb = BoundCallback(model.features, model.last, model.drop, _loader(), num_classes=3)
    trainer = _trainer(tmp_path, cb, max_steps=3, accumulate_grad_batches=2)
    trainer.fit(model, _loader())
    # one evaluation per optimiser step, not per batch
    assert [r.step for r in cb.monitor.history] == [1, 2, 3]


def test_callback_names_a_missing_attribute(tmp_path):
    cb = BoundCallback("features", "head", "drop", num_classes=3)
    trainer = _trainer(tmp_path, cb, max_steps=1)
    with pytest.raises(AttributeError, match="head='head'"):
        trainer.fit(Model(), _loader())
