"""Lightning callback, transformers TrainerCallback, TensorBoard and MLflow logging; logged values checked."""

import math

import pytest
import torch
from torch import nn

from nclab.measure import measure
from nclab.measure.loggers import make_logger, scalars


def _tb_scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for ev_file in sorted(log_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(ev_file.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def _data(n=48, d=6, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    return torch.randn(n, d, generator=g) + 2 * torch.eye(C, d)[y], y


def test_scalars_flatten_layers():
    flat = scalars({"nc1": 0.5, "num_samples": 3, "layers": {"a": {"nc1": 1.0}}, "note": "x"}, "nc/")
    assert flat == {"nc/nc1": 0.5, "nc/num_samples": 3.0, "nc/layers/a/nc1": 1.0}


def test_tensorboard_and_mlflow_loggers(tmp_path):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    tb = make_logger("tensorboard", tmp_path / "tb")
    ml = make_logger("mlflow", tmp_path / "mlruns", run_name="t")
    for step in range(3):
        for lg in (tb, ml):
            lg.log({"nc/nc1": 1.0 / (step + 1), "nc/acc": 0.5}, step=step)
    tb.close()
    ml.close()
    got = _tb_scalars(tmp_path / "tb")
    assert [s for s, _ in got["nc/nc1"]] == [0, 1, 2]
    assert [v for _, v in got["nc/nc1"]] == pytest.approx([1.0, 0.5, 1 / 3])
    client = mlflow.tracking.MlflowClient(tracking_uri=ml.tracking_uri)
    hist = client.get_metric_history(ml.run_id, "nc/nc1")
    assert sorted((m.step, m.value) for m in hist) == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]


def test_lightning_callback_two_epochs(tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    from nclab.measure import CollapseCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    x, y = _data()
    xv, yv = _data(seed=1)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=16)
    module = Module()
    cb = CollapseCallback(layers=["net.1"])
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=CSVLogger(tmp_path), callbacks=[cb],
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, train, val)
    assert [e for e, _ in cb.history] == [0, 1]
    want = measure(module.net, val, layers=["1"])  # the final weights are those of the last validation
    got = cb.history[-1][1]
    assert math.isclose(got["nc1"], want["nc1"], rel_tol=1e-6)
    assert math.isclose(got["layers"]["net.1"]["nc1"], want["layers"]["1"]["nc1"], rel_tol=1e-6)
    assert cb.history[0][1]["nc1"] != got["nc1"]  # the weights changed between the epochs
    import csv

    rows = [r for r in csv.DictReader(open(trainer.logger.log_dir + "/metrics.csv")) if r.get("nc/nc1")]
    assert len(rows) == 2
    assert math.isclose(float(rows[-1]["nc/nc1"]), want["nc1"], rel_tol=1e-5)
    assert math.isclose(float(rows[-1]["nc/accuracy"]), want["accuracy"], rel_tol=1e-6)


def test_trainer_callback_two_epochs(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    pytest.importorskip("tensorboard")
    from nclab.measure import CollapseTrainerCallback

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=40, n_layer=1, n_embd=16, n_head=2, n_positions=32, bos_token_id=0,
                                  eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(0)

    def rows(n):
        ids = torch.randint(0, 12, (n, 12), generator=g)
        return [{"input_ids": r, "attention_mask": torch.ones(12, dtype=torch.long), "labels": r.clone()} for r in ids]

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=4,
        per_device_eval_batch_size=4, eval_strategy="epoch", save_strategy="no", report_to=["tensorboard"],
        use_cpu=True, learning_rate=1e-2, disable_tqdm=True, seed=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows(16), eval_dataset=rows(8))
    cb = CollapseTrainerCallback().attach(trainer)
    trainer.train()
    logged = [h for h in trainer.state.log_history if "nc/nc1" in h]
    assert len(logged) == 2 and len(cb.history) == 2
    want = measure(model, trainer.get_eval_dataloader())
    assert math.isclose(logged[-1]["nc/nc1"], want["nc1"], rel_tol=1e-6)
    assert logged[-1]["nc/num_classes_present"] == want["num_classes_present"] <= 12
    tb = _tb_scalars(tmp_path / "out")  # the Trainer's TensorBoard integration writes under output_dir
    tag = next(t for t in tb if t.endswith("nc/nc1"))  # the integration prefixes "train/" to non-eval keys
    assert len(tb[tag]) == 2 and math.isclose(tb[tag][-1][1], want["nc1"], rel_tol=1e-5)
