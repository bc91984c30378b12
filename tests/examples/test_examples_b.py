"""The Transformer examples: ViT, character LM, seq2seq, pre-train/fine-tune.

Each runs end to end in ``--smoke`` mode (tiny data and model, one epoch) into a temporary
directory: the curves PNG and the checkpoint are written, the checkpoint loads back with
``engine.load`` into the example's own model, and the returned metrics are in range. A few
pieces are checked on their own (patching, windows, greedy decoding, pooling), and the
seq2seq accuracy threshold at default settings runs as a slow test.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import engine

sys.path.insert(0, str(Path(__file__).parent))
from graph_check import assert_graph  # noqa: E402
from resume_check import assert_resumes_a_finished_run  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module (its ``from common import ...`` needs the
    examples folder on ``sys.path``, as when the script is run directly)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"


def load_into(model, path: Path) -> dict:
    """engine.load the checkpoint and load its model state strictly into ``model``."""
    ckpt = engine.load(path)
    assert set(ckpt) >= {"model", "optimizer"}
    model.load_state_dict(ckpt["model"])              # strict: same keys and shapes
    for value in ckpt["model"].values():
        assert np.all(np.isfinite(np.asarray(value.numpy() if hasattr(value, "numpy")
                                             else value)))
    return ckpt


# ----------------------------------------------------------------------------- ViT
def test_vit_patchify_is_row_major_patches():
    vit = load_example("vit_digits")
    model = vit.ViT(image_size=4, patch=2, d_model=8, nhead=2, num_layers=1,
                    dim_feedforward=8)
    images = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    patches = model.patchify(engine.tensor(images)).numpy()
    assert patches.shape == (2, 4, 4)
    np.testing.assert_array_equal(patches[0, 0], images[0, :2, :2].ravel())
    np.testing.assert_array_equal(patches[0, 1], images[0, :2, 2:].ravel())
    np.testing.assert_array_equal(patches[1, 2], images[1, 2:, :2].ravel())
    np.testing.assert_array_equal(patches[1, 3], images[1, 2:, 2:].ravel())
    with pytest.raises(ValueError, match="patch size 3 does not divide"):
        vit.ViT(image_size=8, patch=3)


def test_vit_smoke(tmp_path, capsys):
    vit = load_example("vit_digits")
    results = vit.main(["--smoke", "--out", str(tmp_path)])
    assert set(results) >= {"test_loss", "test_accuracy", "test_macro_f1",
                            "seconds_per_epoch"}
    assert 0.0 <= results["test_accuracy"] <= 1.0 and math.isfinite(results["test_loss"])
    assert_png(tmp_path / "curves.png")
    model = vit.ViT(8, 2, d_model=16, nhead=2, num_layers=1, dim_feedforward=32)
    ckpt = load_into(model, tmp_path / "checkpoint.safetensors")
    assert ckpt["model"]["cls_token"].shape == (1, 1, 16)
    assert ckpt["model"]["pos_embed"].shape == (1, 17, 16)       # 16 patches + [CLS]
    assert_graph(tmp_path / "graph.svg", ckpt["model"])
    assert "== test ==" in capsys.readouterr().out
    assert_resumes_a_finished_run(vit.main, ["--smoke", "--out", str(tmp_path)], tmp_path,
                                  results, scheduler=True)


# ----------------------------------------------------------------------------- char LM
def test_char_lm_windows_shift_targets_by_one():
    lm = load_example("char_transformer_lm")
    ids = np.arange(20, dtype=np.int64)
    x, y = lm.windows(ids, 4, offset=3)
    assert x.shape == y.shape == (4, 4)                 # (20 - 3 - 1) // 4 windows
    np.testing.assert_array_equal(x[0], [3, 4, 5, 6])
    np.testing.assert_array_equal(y, x + 1)


def test_char_lm_is_causal():
    lm = load_example("char_transformer_lm")
    model = lm.CharTransformerLM(vocab_size=7, block_size=6, d_model=8, nhead=2,
                                 num_layers=1, dim_feedforward=16)
    model.eval()
    a = np.array([[1, 2, 3, 4, 5, 6]], dtype=np.int64)
    b = a.copy()
    b[0, 4:] = [0, 0]                                   # change only the last two inputs
    with engine.no_grad():
        la, lb = model(engine.tensor(a)).numpy(), model(engine.tensor(b)).numpy()
    np.testing.assert_allclose(la[0, :4], lb[0, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(la[0, 4:], lb[0, 4:])


def test_char_lm_smoke_on_a_text_file(tmp_path, capsys):
    lm = load_example("char_transformer_lm")
    text = "the quick brown fox jumps over the lazy dog. " * 200
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    results = lm.main(["--smoke", "--text", str(path), "--out", str(out),
                       "--sample-chars", "30", "--temperature", "0.5"])
    assert results["test_bpc"] == pytest.approx(results["test_loss"] / math.log(2))
    assert results["test_perplexity"] == pytest.approx(math.exp(results["test_loss"]))
    # a sample starts with the prompt (the text's first word) and has only its characters
    assert results["sample"].startswith("the ") and len(results["sample"]) == 4 + 30
    assert set(results["sample"]) <= set(text)
    assert_png(out / "curves.png")
    ckpt = engine.load(out / "checkpoint.safetensors")
    vocab = ckpt["vocabulary"]
    assert "".join(vocab) == "".join(sorted(set(text)))
    model = lm.CharTransformerLM(len(vocab), 32, d_model=32, nhead=2, num_layers=1,
                                 dim_feedforward=64)
    load_into(model, out / "checkpoint.safetensors")
    assert_graph(out / "graph.svg", ckpt["model"])
    printed = capsys.readouterr().out
    assert "val_bpc" in printed and "== sample (temperature 0.5) ==" in printed
    assert_resumes_a_finished_run(lm.main, ["--smoke", "--text", str(path), "--out", str(out),
                                            "--sample-chars", "30", "--temperature", "0.5"],
                                  out, results, scheduler=True)


def test_char_lm_rejects_a_prompt_outside_the_text(tmp_path):
    lm = load_example("char_transformer_lm")
    path = tmp_path / "abc.txt"
    path.write_text("abc " * 500, encoding="utf-8")
    with pytest.raises(SystemExit):
        lm.main(["--smoke", "--text", str(path), "--prompt", "xyz", "--out", str(tmp_path)])


# ----------------------------------------------------------------------------- seq2seq
def test_greedy_decode_stops_at_eos_and_pads_after():
    s2s = load_example("seq2seq_transformer")
    model = s2s.Seq2SeqTransformer(vocab_size=6, d_model=8, nhead=2, num_layers=1,
                                   dim_feedforward=16)
    src = engine.tensor(np.array([[3, 4, 0], [5, 0, 0]], dtype=np.int64))
    model.generator.weight.data[...] = 0
    model.generator.bias.data[...] = np.array([0, 0, 0, 0, 0, 9], dtype=np.float32)
    ids = s2s.greedy_decode(model, src, bos=1, eos=2, max_len=4)
    np.testing.assert_array_equal(ids, [[5, 5, 5, 5], [5, 5, 5, 5]])    # never <eos>
    model.generator.bias.data[...] = np.array([0, 0, 9, 0, 0, 0], dtype=np.float32)
    ids = s2s.greedy_decode(model, src, bos=1, eos=2, max_len=4)
    np.testing.assert_array_equal(ids, [[2], [2]])                       # stops at once
    assert model.training                                                # mode restored


@pytest.mark.parametrize("task", ["sort", "reverse", "addition"])
def test_seq2seq_smoke(task, tmp_path, capsys):
    s2s = load_example("seq2seq_transformer")
    results = s2s.main(["--smoke", "--task", task, "--max-len", "3", "--out",
                        str(tmp_path)])
    assert set(results) >= {"test_loss", "test_token_accuracy", "test_exact_match",
                            "seconds_per_epoch"}
    assert 0.0 <= results["test_exact_match"] <= results["test_token_accuracy"] + 1e-12
    assert_png(tmp_path / "curves.png")
    model = s2s.Seq2SeqTransformer(14, d_model=16, nhead=2, num_layers=1,
                                   dim_feedforward=32, max_len=64)
    ckpt = load_into(model, tmp_path / "checkpoint.safetensors")
    assert ckpt["task"] == task and ckpt["vocabulary"][:3] == ["<pad>", "<bos>", "<eos>"]
    assert_graph(tmp_path / "graph.svg", ckpt["model"])
    printed = capsys.readouterr().out
    assert "(none of the latter two in training)" in printed and "expected" in printed
    if task == "sort":
        assert_resumes_a_finished_run(s2s.main, ["--smoke", "--task", task, "--max-len", "3",
                                                 "--out", str(tmp_path)],
                                      tmp_path, results, scheduler=True)


@pytest.mark.slow
def test_seq2seq_default_settings_reach_exact_match(tmp_path):
    s2s = load_example("seq2seq_transformer")
    results = s2s.main(["--out", str(tmp_path)])
    assert results["test_exact_match"] >= 0.95


# ----------------------------------------------------------------------------- F15
def test_classifier_pooling_ignores_padding():
    pf = load_example("pretrain_finetune")
    encoder = pf.Encoder(vocab_size=10, max_len=8, d_model=8, nhead=2, num_layers=1,
                         dim_feedforward=16, dropout=0.0)
    model = pf.Classifier(encoder)
    model.eval()
    short = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], dtype=np.int64)
    padded = np.concatenate([short, np.zeros((2, 3), dtype=np.int64)], axis=1)
    with engine.no_grad():
        a, b = model(engine.tensor(short)).numpy(), model(engine.tensor(padded)).numpy()
    assert a.shape == (2, 2)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_pretrain_finetune_smoke(tmp_path, capsys):
    pf = load_example("pretrain_finetune")
    results = pf.main(["--smoke", "--out", str(tmp_path)])
    for name in ("finetuned", "scratch"):
        assert 0.0 <= results[f"{name}_test_accuracy"] <= 1.0
        assert math.isfinite(results[f"{name}_test_loss"])
        assert_png(tmp_path / f"{name}_curves.png")
    assert_png(tmp_path / "pretrain_curves.png")
    assert 0.0 <= results["pretrain_val_next_word_acc"] <= 1.0
    lm_state = engine.load(tmp_path / "pretrained_lm.safetensors")["model"]
    assert_graph(tmp_path / "graph.svg", lm_state)
    vocab = lm_state["lm_head.weight"].shape[0]
    maxlen = 16                                      # the grammar's longest sentence

    def encoder():
        return pf.Encoder(vocab, maxlen, d_model=16, nhead=2, num_layers=1,
                          dim_feedforward=32)

    load_into(pf.LanguageModel(encoder(), vocab), tmp_path / "pretrained_lm.safetensors")
    tuned = load_into(pf.Classifier(encoder()), tmp_path / "finetuned.safetensors")["model"]
    scratch = load_into(pf.Classifier(encoder()), tmp_path / "scratch.safetensors")["model"]
    assert tuned["head.weight"].shape == (2, 16)
    # the two classifiers start from different encoders
    assert not np.allclose(tuned["encoder.embed.weight"].numpy(),
                           scratch["encoder.embed.weight"].numpy())
    assert "finetuned_test_accuracy" in capsys.readouterr().out
    for name in ("pretrained_lm", "finetuned", "scratch"):
        ckpt = engine.load(tmp_path / f"{name}.safetensors")
        assert ckpt["batch"] == 0 and ckpt["epoch"] == 1 and ckpt["rng"].dtype == np.uint8
    assert_resumes_a_finished_run(pf.main, ["--smoke", "--out", str(tmp_path)], tmp_path,
                                  results, scheduler=False, checkpoint="scratch.safetensors",
                                  history="pretrain_history.json")
