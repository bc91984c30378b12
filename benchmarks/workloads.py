"""The four training-step workloads, built the same way in xpgrad and in PyTorch.

Each builder returns a ``step()`` closure doing forward, cross-entropy, backward and an
Adam update on fixed random data; ``sync()`` waits for the device before the clock stops.

- W1: MLP 784-256-256-10, batch 128.
- W2: Embedding(10000, 128) -> LSTM(64) -> Linear(64, 10), sequence 100, batch 64.
- W3: Embedding + learned positions -> 2 x TransformerEncoderLayer(d_model 128, 4 heads,
  feed-forward 512, pre-norm) -> mean-pool -> Linear, sequence 128, batch 32.
- W4: the classic CNN of FORMULAS.md (conv 3->64, ReLU, max-pool, conv 64->128, ReLU,
  max-pool, Linear(128*8*8 -> 128), ReLU, Linear(128 -> 10)) on 32x32 RGB, batch 32.

``scale`` < 1 shrinks every size (for the smoke mode of the tests).
"""

from __future__ import annotations

import numpy as np

WORKLOADS = {
    "W1": "MLP 784-256-256-10, batch 128",
    "W2": "Embedding(10000,128)-LSTM(64)-Linear, seq 100, batch 64",
    "W3": "2x TransformerEncoderLayer(128, 4 heads, ff 512, pre-norm), seq 128, batch 32",
    "W4": "classic CNN on 32x32x3, batch 32",
}


def sizes(name: str, scale: float) -> dict:
    s = lambda n: max(2, int(n * scale))
    return {
        "W1": dict(batch=s(128), inp=s(784), hidden=s(256), classes=10),
        "W2": dict(batch=s(64), seq=s(100), vocab=s(10000), emb=s(128), hidden=s(64),
                   classes=10),
        "W3": dict(batch=s(32), seq=s(128), vocab=s(10000), d=4 * max(1, s(32)),
                   heads=4, ff=s(512), classes=10),
        "W4": dict(batch=s(32), size=max(8, 4 * s(8)), c1=s(64), c2=s(128), hidden=s(128),
                   classes=10),
    }[name]


def data(name: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed inputs and labels for a workload (the same for both frameworks)."""
    rng = np.random.default_rng(0)
    z = sizes(name, scale)
    labels = rng.integers(0, z["classes"], z["batch"])
    if name == "W1":
        x = rng.standard_normal((z["batch"], z["inp"])).astype(np.float32)
    elif name in ("W2", "W3"):
        x = rng.integers(0, z["vocab"], (z["batch"], z["seq"]))
    else:
        x = rng.standard_normal((z["batch"], 3, z["size"], z["size"])).astype(np.float32)
    return x, labels


# ----------------------------------------------------------------------------- models
def build_model(nn, arange, name: str, scale: float):
    """A workload's model from either framework: ``nn`` is ``nn`` or ``torch.nn`` and
    ``arange`` is ``engine.arange`` or ``torch.arange``; the two share every name used."""
    z = sizes(name, scale)
    if name == "W1":
        return nn.Sequential(nn.Linear(z["inp"], z["hidden"]), nn.ReLU(),
                             nn.Linear(z["hidden"], z["hidden"]), nn.ReLU(),
                             nn.Linear(z["hidden"], z["classes"]))
    if name == "W2":
        class LSTMClassifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(z["vocab"], z["emb"])
                self.lstm = nn.LSTM(z["emb"], z["hidden"], batch_first=True)
                self.head = nn.Linear(z["hidden"], z["classes"])

            def forward(self, tokens):
                _, (h, _) = self.lstm(self.embedding(tokens))
                return self.head(h[-1])

        return LSTMClassifier()
    if name == "W3":
        class TransformerClassifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(z["vocab"], z["d"])
                self.positions = nn.Embedding(z["seq"], z["d"])
                layer = nn.TransformerEncoderLayer(z["d"], z["heads"], z["ff"],
                                                   batch_first=True, norm_first=True)
                self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
                self.head = nn.Linear(z["d"], z["classes"])

            def forward(self, tokens):
                pos = arange(tokens.shape[1], device=tokens.device)
                h = self.encoder(self.embedding(tokens) + self.positions(pos))
                return self.head(h.mean(dim=1))

        return TransformerClassifier()
    flat = z["c2"] * (z["size"] // 4) ** 2
    return nn.Sequential(
        nn.Conv2d(3, z["c1"], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(z["c1"], z["c2"], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, z["hidden"]), nn.ReLU(),
        nn.Linear(z["hidden"], z["classes"]))


def xpgrad_model(name: str, scale: float):
    import engine
    import nn

    return build_model(nn, engine.arange, name, scale)


def xpgrad_step(name: str, device: str = "cpu", scale: float = 1.0):
    """(step, sync) for one workload on one device."""
    import engine
    import losses
    import optim

    engine.manual_seed(0)
    model = xpgrad_model(name, scale).to(device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = data(name, scale)
    x, y = engine.tensor(x, device=device), engine.tensor(y, device=device)

    def step():
        opt.zero_grad()
        loss = losses.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def sync():
        engine.synchronize(device)

    return step, sync


def mlp_step(width: int, device: str = "cpu"):
    """(step, sync) of an MLP 784-width-width-10 on a batch of 128 (the size sweep)."""
    import engine
    import losses
    import nn
    import optim

    engine.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width),
                          nn.ReLU(), nn.Linear(width, 10)).to(device)
    opt = optim.Adam(model.parameters())
    x = engine.randn(128, 784, device=device)
    y = engine.randint(0, 10, (128,), device=device)

    def step():
        opt.zero_grad()
        losses.cross_entropy(model(x), y).backward()
        opt.step()

    return step, lambda: engine.synchronize(device)


# ----------------------------------------------------------------------------- PyTorch
def torch_model(name: str, scale: float):
    import torch

    return build_model(torch.nn, torch.arange, name, scale)


def torch_step(name: str, device: str = "cpu", scale: float = 1.0):
    import torch

    torch.manual_seed(0)
    model = torch_model(name, scale).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data(name, scale)
    x, y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    return step, sync
