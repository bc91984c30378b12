"""--resume: a trainer killed (SIGKILL) in the middle of an epoch and resumed from its
checkpoint ends exactly as an uninterrupted run of the same seed: same weights, optimizer
and scheduler state, same history, same test results, bit for bit.

Each example is run in a fresh process; the test-only environment variable
XPGRAD_KILL_AFTER_BATCHES makes it kill itself after that many training batches, after
the checkpoint of that batch (if one was due) is written."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

import engine

sys.path.insert(0, str(Path(__file__).parent))
from resume_check import EXAMPLES, assert_same_run, run_example  # noqa: E402

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

TRAINERS = ["linear_regression", "mlp_digits", "cnn_digits", "lstm_text_classifier",
            "transformer_classifier", "vit_digits", "char_transformer_lm",
            "seq2seq_transformer", "pretrain_finetune", "ddp_train"]


def _load(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_resume_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def _killed(proc) -> None:
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])


def test_common_parser_has_the_resume_flags():
    common = _load("common")
    parser = common.make_parser("demo")
    args = parser.parse_args(["--resume", "--checkpoint-every", "5"])
    assert args.resume is True and args.checkpoint_every == 5
    assert parser.parse_args([]).checkpoint_every == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["--checkpoint-every", "-1"])


@pytest.mark.parametrize("name", TRAINERS)
def test_every_trainer_takes_resume_and_checkpoint_every(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _load(name).main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--resume" in text and "--checkpoint-every N" in text


def test_mlp_digits_killed_mid_epoch_resumes_bit_for_bit(tmp_path):
    flags = ["--smoke", "--epochs", "2"]                 # 5 batches per epoch
    _ok(run_example("mlp_digits", tmp_path / "a", *flags))
    b = tmp_path / "b"
    _killed(run_example("mlp_digits", b, *flags, "--checkpoint-every", "3", kill_after=7))
    ckpt = engine.load(b / "checkpoint.safetensors")
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 1, 6)   # inside epoch 2
    assert ckpt["loader"]["in_epoch"] and ckpt["loader"]["batches_yielded"] == 1
    assert len(ckpt["running"]) == 3 and ckpt["running"]["seen"] == 32
    assert not (b / "history.json").exists()
    resumed = run_example("mlp_digits", b, *flags, "--checkpoint-every", "3", "--resume")
    _ok(resumed)
    assert "resuming from" in resumed.stdout and "epoch 2, batch 1" in resumed.stdout
    assert_same_run(tmp_path / "a", b)
    # epoch 1 was not trained again: its wall time is the killed process's
    final = engine.load(b / "checkpoint.safetensors")
    assert final["history"]["seconds"][0] == ckpt["history"]["seconds"][0]


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path, capsys):
    mlp = _load("mlp_digits")
    mlp.main(["--smoke", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"--resume: .* lr=0\.001.* lr=0\.01"):
        mlp.main(["--smoke", "--out", str(tmp_path), "--resume", "--lr", "0.01"])


def test_resume_without_a_checkpoint_starts_from_the_beginning(tmp_path, capsys):
    mlp = _load("mlp_digits")
    fresh = mlp.main(["--smoke", "--out", str(tmp_path / "a")])
    resumed = mlp.main(["--smoke", "--out", str(tmp_path / "b"), "--resume"])
    assert "no checkpoint" in capsys.readouterr().out
    assert resumed["test_loss"] == fresh["test_loss"]
