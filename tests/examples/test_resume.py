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


def test_char_lm_killed_mid_epoch_resumes_bit_for_bit(tmp_path):
    """A loader built each epoch at a random window offset, a per-batch schedule, dropout,
    and a sample drawn after training."""
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 80, encoding="utf-8")
    flags = ["--smoke", "--epochs", "2", "--text", str(text), "--max-chars", "3000",
             "--batch-size", "8", "--dropout", "0.1", "--sample-chars", "40"]
    straight = run_example("char_transformer_lm", tmp_path / "a", *flags)
    _ok(straight)
    b = tmp_path / "b"
    _killed(run_example("char_transformer_lm", b, *flags, "--checkpoint-every", "4",
                        kill_after=13))
    ckpt = engine.load(b / "checkpoint.safetensors")
    assert ckpt["step"] == 12 and ckpt["epoch"] == 1 and ckpt["batch"] > 0
    assert ckpt["running"]["offset"] is not None
    resumed = run_example("char_transformer_lm", b, *flags, "--resume")
    _ok(resumed)
    assert "resuming from" in resumed.stdout
    assert_same_run(tmp_path / "a", b)
    assert _sample(resumed.stdout) == _sample(straight.stdout)


def _sample(stdout: str) -> str:
    """The text sampled after training, as printed."""
    return stdout.split("== sample")[1].split("\nwrote ")[0]


def test_pretrain_finetune_killed_in_a_later_phase_resumes_bit_for_bit(tmp_path):
    """Killed while fine-tuning: the pre-training phase is restored from its finished
    checkpoint, fine-tuning from its last one, and a scratch.safetensors left by another
    run is ignored (the scratch phase starts afresh)."""
    flags = ["--smoke", "--epochs", "2"]       # pre-training 4 batches, classifiers 2 + 2
    _ok(run_example("pretrain_finetune", tmp_path / "a", *flags))
    b = tmp_path / "b"
    _killed(run_example("pretrain_finetune", b, *flags, "--checkpoint-every", "3",
                        kill_after=8))
    tuned = engine.load(b / "finetuned.safetensors")
    assert (tuned["epoch"], tuned["batch"], tuned["step"]) == (1, 1, 3)
    stale = dict(tuned, run_id="another run")
    engine.save(stale, b / "scratch.safetensors")
    resumed = run_example("pretrain_finetune", b, *flags, "--resume")
    _ok(resumed)
    assert "scratch.safetensors was left by another run" in resumed.stdout
    names = ("pretrained_lm", "finetuned", "scratch")
    assert_same_run(tmp_path / "a", b, checkpoints=[f"{n}.safetensors" for n in names],
                    histories=["pretrain_history.json", "finetuned_history.json",
                               "scratch_history.json"])


@pytest.mark.slow
def test_ddp_train_on_two_ranks_killed_mid_epoch_resumes_bit_for_bit(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "distributed"))
    from mpi_util import mpiexec_command

    mpiexec = mpiexec_command(2)
    if mpiexec is None:
        pytest.skip("needs mpi4py and mpiexec")
    flags = ["--smoke", "--epochs", "2", "--batch-size", "32"]    # 4 batches per epoch
    _ok(run_example("ddp_train", tmp_path / "a", *flags, prefix=mpiexec))
    b = tmp_path / "b"
    killed = run_example("ddp_train", b, *flags, "--checkpoint-every", "3", kill_after=7,
                         prefix=mpiexec)
    assert killed.returncode != 0
    for name in ("checkpoint.safetensors", "checkpoint.rank1.safetensors"):
        ckpt = engine.load(b / name)
        assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, 6), name
    resumed = run_example("ddp_train", b, *flags, "--resume", prefix=mpiexec)
    _ok(resumed)
    assert resumed.stdout.count("resuming from") == 2
    assert_same_run(tmp_path / "a", b, checkpoints=["checkpoint.safetensors",
                                                    "checkpoint.rank1.safetensors"])
