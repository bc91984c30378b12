"""A Transformer trained with Adam, saved mid-training with engine.save and resumed with
engine.load, gives the same losses step for step as training without interruption."""

import numpy as np

import engine
import nn
import optim
from engine import random as engine_random

STEPS, SAVE_AT = 8, 4


class Seq2Seq(nn.Module):
    """A tiny encoder-decoder with a linear read-out, dropout on (so the resumed run also
    needs the generator state)."""

    def __init__(self):
        super().__init__()
        self.transformer = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1,
                                          num_decoder_layers=1, dim_feedforward=16,
                                          dropout=0.1)
        self.head = nn.Linear(8, 3)

    def forward(self, src, tgt, tgt_mask):
        return self.head(self.transformer(src, tgt, tgt_mask=tgt_mask))


def _data():
    rng = np.random.default_rng(0)
    src = engine.tensor(rng.standard_normal((6, 4, 8)), dtype=np.float32)
    tgt = engine.tensor(rng.standard_normal((5, 4, 8)), dtype=np.float32)
    y = engine.tensor(rng.standard_normal((5, 4, 3)), dtype=np.float32)
    return src, tgt, y, nn.Transformer.generate_square_subsequent_mask(5)


def _build(seed):
    engine.manual_seed(seed)
    model = Seq2Seq()
    return model, optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)


def _train(model, opt, steps):
    src, tgt, y, mask = _data()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(src, tgt, mask) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_resume_gives_identical_losses(tmp_path):
    model, opt = _build(0)
    engine.manual_seed(100)                                  # dropout stream
    straight = _train(model, opt, STEPS)
    final = {k: v.numpy() for k, v in model.state_dict().items()}

    model, opt = _build(0)
    engine.manual_seed(100)
    first = _train(model, opt, SAVE_AT)
    path = tmp_path / "ckpt.safetensors"
    engine.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                 "rng": engine_random.get_state(), "step": SAVE_AT}, path)
    del model, opt

    model, opt = _build(1)                                   # different weights until loaded
    ckpt = engine.load(path)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    engine_random.set_state(ckpt["rng"])
    assert ckpt["step"] == SAVE_AT
    resumed = first + _train(model, opt, STEPS - SAVE_AT)

    assert resumed == straight                               # bit for bit, step for step
    assert straight[-1] < straight[0]                        # and it did train
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), final[k], err_msg=k)
        assert v.dtype == np.float32


def test_resume_without_optimizer_state_diverges(tmp_path):
    """The check has teeth: resuming with a fresh Adam (no moments, step 0) changes the
    losses after the save point."""
    model, opt = _build(0)
    engine.manual_seed(100)
    straight = _train(model, opt, STEPS)

    model, opt = _build(0)
    engine.manual_seed(100)
    first = _train(model, opt, SAVE_AT)
    path = tmp_path / "model.safetensors"
    engine.save({"model": model.state_dict(), "rng": engine_random.get_state()}, path)
    model, opt = _build(1)
    ckpt = engine.load(path)
    model.load_state_dict(ckpt["model"])
    engine_random.set_state(ckpt["rng"])
    resumed = first + _train(model, opt, STEPS - SAVE_AT)
    assert resumed[SAVE_AT] == straight[SAVE_AT]             # same weights, same first loss
    assert resumed[SAVE_AT + 1:] != straight[SAVE_AT + 1:]
