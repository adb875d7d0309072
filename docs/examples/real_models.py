"""The worked examples of docs/real-models.md, runnable offline (random-init models from configs).

Run: ``HF_HUB_OFFLINE=1 python docs/examples/real_models.py`` (needs the ``hf`` and ``lightning``
extras); ``torchrun --nproc_per_node=2 docs/examples/measure_dist.py`` for the distributed one.
"""

import tempfile
import warnings

import torch
from torch import nn

import nclab

warnings.filterwarnings("ignore")
KEYS = ("nc1", "nc2_etf", "nc3_duality", "ncc_accuracy", "accuracy", "num_samples")


def show(title, res):
    print(title + ": " + ", ".join(f"{k} {res[k]:.4g}" for k in KEYS if k in res))


def data(n=96, d=6, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    return torch.randn(n, d, generator=g) + 2 * torch.eye(C, d)[y], y


def vision():
    import transformers

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=128, num_labels=10)
    vit = transformers.ViTForImageClassification(cfg).eval()
    g = torch.Generator().manual_seed(0)
    batches = [{"pixel_values": torch.randn(16, 3, 32, 32, generator=g), "labels": torch.arange(16) % 10}
               for _ in range(4)]
    show("ViT (random init, 64 images)", nclab.measure(vit, batches))


def lightning():
    import lightning.pytorch as L

    from nclab.measure import CollapseCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def validation_step(self, batch, _):
            self.log("val_loss", nn.functional.cross_entropy(self(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    (x, y), (xv, yv) = data(), data(seed=1)
    loader = lambda a, b: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(a, b), batch_size=16)  # noqa: E731
    cb = CollapseCallback(layers=["net.1"])
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, callbacks=[cb], enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(Module(), loader(x, y), loader(xv, yv))
    for epoch, res in cb.history:
        show(f"Lightning, validation epoch {epoch}", res)


def hf_trainer():
    import transformers

    from nclab.measure import CollapseTrainerCallback

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=40, n_layer=1, n_embd=16, n_head=2, n_positions=32)
    model = transformers.GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(0)

    def rows(n):
        ids = torch.randint(0, 12, (n, 12), generator=g)
        return [{"input_ids": r, "attention_mask": torch.ones(12, dtype=torch.long), "labels": r.clone()} for r in ids]

    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(output_dir=out, num_train_epochs=2, per_device_train_batch_size=4,
                                              eval_strategy="epoch", report_to=[], use_cpu=True,
                                              disable_tqdm=True, logging_strategy="no", save_strategy="no")
        trainer = transformers.Trainer(model=model, args=args, train_dataset=rows(16), eval_dataset=rows(8))
        CollapseTrainerCallback().attach(trainer)
        trainer.train()
        for rec in trainer.state.log_history:
            if "nc/nc1" in rec:
                print(f"Trainer, epoch {rec['epoch']:.0f}: " + ", ".join(
                    f"{k} {rec[k]:.4g}" for k in ("nc/nc1", "nc/nc2_etf", "nc/num_classes_present", "nc/accuracy")
                    if k in rec))


if __name__ == "__main__":
    vision()
    lightning()
    hf_trainer()
