"""Three PyTorch programs (tests/ported/*.py) run on PyTorch and, with only their import
lines changed, on xpgrad: from the same initial weights and data, in float64, every training
step's loss and every parameter's gradient agree to 1e-10, and so do evaluation losses,
final weights and generated tokens. Dropout is set to 0 for the training runs (the two
libraries draw different masks); evaluation runs keep it, as eval() switches it off."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import engine

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.torch,
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
]

sys.path.insert(0, str(Path(__file__).parent))
from porting import (  # noqa: E402
    IMPORTS, Recorder, as_array, assert_same_run, load, ported, source,
)

PROGRAMS = ["mnist_cnn.py", "word_language_model.py", "gpt.py"]
RTOL = 1e-10


@pytest.fixture
def float64():
    """Both libraries make float64 tensors by default, for the length of a test."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    engine.set_default_dtype(np.float64)
    yield
    torch.set_default_dtype(before)


def _both(name):
    return load(name, "torch"), load(name, "xpgrad")


def _copy_weights(theirs, ours):
    """Load PyTorch's initial weights into ours, as arrays; the keys agree, in order. The
    buffers each program computed agree already: causal masks exactly, positional
    encodings to float32's rounding (NumPy's and PyTorch's float32 exp differ by an ulp
    here and there, times positions up to 5000 inside sin and cos)."""
    buffers = dict(theirs.named_buffers())
    assert [name for name, _ in ours.named_buffers()] == list(buffers)
    for name, b in ours.named_buffers():
        np.testing.assert_allclose(as_array(b), as_array(buffers[name]), rtol=0, atol=1e-5,
                                   err_msg=name)
    sd = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(sd)
    ours.load_state_dict(sd)


def _assert_same_weights(ours, theirs):
    mine = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(as_array(mine[name]), as_array(p), rtol=RTOL,
                                   atol=RTOL * float(np.max(np.abs(as_array(p)))),
                                   err_msg=name)


def _no_dropout(model, nn):
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


# ------------------------------------------------------------------------------ the source
@pytest.mark.parametrize("name", PROGRAMS)
def test_only_the_import_lines_differ(name):
    theirs, ours = source(name).splitlines(), ported(source(name)).splitlines()
    assert len(theirs) == len(ours)
    changed = [(a, b) for a, b in zip(theirs, ours) if a != b]
    assert changed and all(IMPORTS[a] == b for a, b in changed)
    assert not any(line.startswith(("import torch", "from torch")) for line in ours)


def test_an_import_without_a_counterpart_is_refused():
    with pytest.raises(AssertionError, match="no xpgrad counterpart for 'import torchvision'"):
        ported("import torch\nimport torchvision\n")


# ------------------------------------------------------------------------------ MNIST CNN
def test_mnist_cnn_matches_pytorch(float64):
    """Two epochs of Adadelta with StepLR on two batches of random images."""
    progs = _both("mnist_cnn.py")
    args = progs[0].make_parser().parse_args(["--batch-size", "4", "--log-interval", "1"])
    models = [prog.Net() for prog in progs]
    _copy_weights(models[0], models[1])
    runs, tests = [], []
    for prog, model in zip(progs, models):
        device = prog.torch.device("cpu")
        train_loader = prog.torch.utils.data.DataLoader(prog.random_digits(8, seed=0),
                                                        batch_size=4)
        test_loader = prog.torch.utils.data.DataLoader(prog.random_digits(6, seed=1),
                                                       batch_size=4)
        results = [prog.test(model, device, test_loader)]   # eval mode, dropout as built
        _no_dropout(model, prog.nn)
        optimizer = prog.optim.Adadelta(model.parameters(), lr=args.lr)
        scheduler = prog.StepLR(optimizer, step_size=1, gamma=args.gamma)
        record = Recorder(model)
        for epoch in (1, 2):
            prog.train(args, model, device, train_loader, optimizer, epoch, record)
            results.append(prog.test(model, device, test_loader))
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.49, rel=1e-15)
        runs.append(record)
        tests.append(results)
    theirs, ours = runs
    assert len(ours.losses) == 4
    assert_same_run(ours, theirs, RTOL)
    for (loss, correct), (loss_t, correct_t) in zip(*tests[::-1]):
        assert loss == pytest.approx(loss_t, rel=RTOL) and correct == correct_t
    _assert_same_weights(models[1], models[0])


# ------------------------------------------------------------------------------ word LM
@pytest.fixture
def corpus_dir(tmp_path):
    """A tiny corpus: lines of 3-8 words drawn from 16."""
    rng = np.random.default_rng(0)
    words = "the cat dog sat on a mat ran far away and then slept under one tree".split()
    for split, lines in (("train", 12), ("valid", 4), ("test", 4)):
        text = "".join(" ".join(rng.choice(words, size=rng.integers(3, 9))) + "\n"
                       for _ in range(lines))
        (tmp_path / f"{split}.txt").write_text(text, encoding="utf8")
    return tmp_path


@pytest.mark.parametrize("model", [["LSTM", "--tied"], ["Transformer"], ["GRU"],
                                   ["RNN_TANH", "--nlayers", "1"]],
                         ids=["LSTM-tied", "Transformer", "GRU", "RNN_TANH"])
def test_word_language_model_matches_pytorch(float64, corpus_dir, model):
    """Two epochs of truncated backpropagation through time with clipping and the SGD
    update in place; validation loss after each."""
    progs = _both("word_language_model.py")
    args = progs[0].make_parser().parse_args(
        ["--data", str(corpus_dir), "--emsize", "8", "--nhid", "8", "--bptt", "5",
         "--batch_size", "3", "--eval_batch_size", "2", "--dropout", "0", "--lr", "5",
         "--log-interval", "2", "--model", *model])
    corpora = [prog.Corpus(args.data) for prog in progs]
    assert corpora[0].dictionary.idx2word == corpora[1].dictionary.idx2word
    np.testing.assert_array_equal(as_array(corpora[1].train), as_array(corpora[0].train))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # PyTorch's nested-tensor advice
        models = [prog.build_model(args, len(c.dictionary)) for prog, c in zip(progs, corpora)]
    _copy_weights(models[0], models[1])
    runs, valid = [], []
    for prog, model, corpus in zip(progs, models, corpora):
        train_data = prog.batchify(corpus.train, args.batch_size, "cpu")
        val_data = prog.batchify(corpus.valid, args.eval_batch_size, "cpu")
        assert tuple(train_data.shape) == (len(corpus.train) // 3, 3)
        criterion = prog.nn.NLLLoss()
        record = Recorder(model)
        losses = []
        for epoch in (1, 2):
            prog.train(args, model, corpus, train_data, criterion, args.lr, epoch, record)
            losses.append(prog.evaluate(args, model, corpus, val_data, criterion))
        runs.append(record)
        valid.append(losses)
    theirs, ours = runs
    assert len(ours.losses) == 2 * -(-(len(train_data) - 1) // args.bptt)
    assert_same_run(ours, theirs, RTOL)
    np.testing.assert_allclose(valid[1], valid[0], rtol=RTOL)
    _assert_same_weights(models[1], models[0])


# ------------------------------------------------------------------------------ GPT
def _gpt_pair(progs, args):
    models = []
    for prog in progs:
        config = prog.GPTConfig(block_size=args.block_size, vocab_size=args.vocab_size,
                                n_layer=args.n_layer, n_head=args.n_head,
                                n_embd=args.n_embd, dropout=args.dropout, bias=args.bias)
        models.append(prog.GPT(config))
    _copy_weights(models[0], models[1])
    return models


def test_gpt_matches_pytorch(float64):
    """Greedy generation (top_k=1 sampling, and topk without sampling) past the block
    size; six AdamW steps with decay and no-decay groups, warm-up then cosine, clipping."""
    progs = _both("gpt.py")
    args = progs[0].make_parser().parse_args(
        ["--n-embd", "16", "--block-size", "8", "--vocab-size", "11", "--batch-size", "3",
         "--max-iters", "6", "--warmup-iters", "2", "--lr-decay-iters", "5",
         "--learning-rate", "1e-2", "--log-interval", "2"])
    rng = np.random.default_rng(0)
    data = rng.integers(0, args.vocab_size, size=200)
    starts = [rng.integers(0, len(data) - args.block_size, size=3).tolist() for _ in range(8)]
    models = _gpt_pair(progs, args)
    runs, tokens, losses = [], [], []
    for prog, model in zip(progs, models):
        assert [n for n, _ in model.named_parameters()].count("lm_head.weight") == 0
        assert model.lm_head.weight is model.transformer.wte.weight
        model.eval()
        context = prog.torch.tensor([[1, 2], [3, 4]])
        tokens.append([model.generate(context, 10, top_k=1).tolist(),
                       model.generate(context, 10, do_sample=False).tolist()])
        optimizer = model.configure_optimizers(args.weight_decay, args.learning_rate,
                                               (args.beta1, args.beta2), "cpu")
        assert [len(g["params"]) for g in optimizer.param_groups] == [10, 18]
        trainer = prog.Trainer(args, model, optimizer)
        record = Recorder(model)
        trainer.add_callback(record)
        trainer.run(prog.get_batch(data, ix, args.block_size, "cpu") for ix in starts[:6])
        assert model.training and optimizer.param_groups[1]["lr"] == pytest.approx(
            prog.get_lr(5, 1e-2, 6e-5, 2, 5))
        held_out = [prog.get_batch(data, ix, args.block_size, "cpu") for ix in starts[6:]]
        losses.append(prog.estimate_loss(model, held_out).item())
        runs.append(record)
    theirs, ours = runs
    assert_same_run(ours, theirs, RTOL)
    _assert_same_weights(models[1], models[0])
    assert losses[1] == pytest.approx(losses[0], rel=RTOL)
    assert tokens[1] == tokens[0]
    assert np.shape(tokens[0]) == (2, 2, 12)


# ------------------------------------------------------------------------------ main()
@pytest.mark.parametrize("framework", ["torch", "xpgrad"])
def test_each_main_runs(framework, tmp_path, corpus_dir, monkeypatch, capsys):
    """The programs' own main(): seeds, devices, loaders, schedulers, saving and loading,
    random batches and sampling (float32, dropout as given)."""
    monkeypatch.chdir(tmp_path)
    mnist = load("mnist_cnn.py", framework)
    model = mnist.main(["--epochs", "2", "--train-size", "12", "--batch-size", "4",
                        "--save-model"])
    saved = mnist.torch.load(tmp_path / "mnist_cnn.pt")
    assert list(saved) == list(model.state_dict())
    assert "Test set: Average loss" in capsys.readouterr().out
    wlm = load("word_language_model.py", framework)
    for kind in ("LSTM", "Transformer"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # PyTorch's nested-tensor advice
            test_loss = wlm.main(["--data", str(corpus_dir), "--emsize", "8", "--nhid", "8",
                                  "--bptt", "5", "--batch_size", "3", "--epochs", "2",
                                  "--model", kind, "--save", str(tmp_path / "wlm.pt")])
        assert np.isfinite(test_loss) and 0 < test_loss < 10
    gpt = load("gpt.py", framework)
    model = gpt.main(["--n-embd", "16", "--max-iters", "3"])
    assert all(as_array(p).dtype == np.float32 for p in model.parameters())
    out = capsys.readouterr().out
    assert "loss over 4 fresh batches" in out and "using fused AdamW: False" in out
