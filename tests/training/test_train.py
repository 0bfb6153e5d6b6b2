"""Pretraining: learning-rate schedule, checkpoints, resume, logs."""

import csv
import math

import pytest
import torch

from sdclr.training.loop import CHECKPOINT_NAME, LOG_NAME, MODEL_NAME, warmup_cosine_lr
from tests.helpers import pretrain, tiny_settings, toy_images


def test_warmup_then_cosine_to_final_lr():
    """Linear warm-up to the base lr, then cosine down to final_lr, per iteration."""
    assert warmup_cosine_lr(0, 100, 10, 0.5, 1e-6) == pytest.approx(0.05)
    assert warmup_cosine_lr(9, 100, 10, 0.5, 1e-6) == pytest.approx(0.5)
    assert warmup_cosine_lr(10, 100, 10, 0.5, 1e-6) == pytest.approx(0.5)
    assert warmup_cosine_lr(55, 100, 10, 0.5, 1e-6) == pytest.approx(0.25 + 0.5e-6)
    assert warmup_cosine_lr(100, 100, 10, 0.5, 1e-6) == pytest.approx(1e-6)
    lrs = [warmup_cosine_lr(i, 100, 10, 0.5, 1e-6) for i in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["simclr", "sdclr"])
def test_resumed_run_ends_with_the_same_weights(tmp_path, method):
    """A run interrupted after epoch 2 and restarted ends with exactly the weights of an
    uninterrupted run (CPU, fixed seed): model, optimiser, RNG and masks all resume."""
    torch.set_num_threads(1)
    images = toy_images()
    full = tmp_path / "full"
    pretrain(tiny_settings(method), images, full, seed=3, progress=False)

    def stop_after_two(epoch, metrics):
        if epoch == 2:
            raise Interrupt

    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        pretrain(
            tiny_settings(method),
            images,
            resumed,
            seed=3,
            progress=False,
            on_epoch_end=stop_after_two,
        )
    assert torch.load(resumed / CHECKPOINT_NAME, weights_only=False)["epoch"] == 2
    assert not (resumed / MODEL_NAME).exists()
    epochs_run = []
    pretrain(
        tiny_settings(method),
        images,
        resumed,
        seed=3,
        progress=False,
        on_epoch_end=lambda e, m: epochs_run.append(e),
    )
    assert epochs_run == [3, 4]
    a = torch.load(full / MODEL_NAME, weights_only=False)["state_dict"]
    b = torch.load(resumed / MODEL_NAME, weights_only=False)["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with open(resumed / LOG_NAME) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(float(r["loss"])) for r in rows)


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path):
    """A damaged resume.pt stops the run with a message naming it, and is not deleted."""
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        pretrain(tiny_settings(), toy_images(), tmp_path, seed=0, progress=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == b"not a checkpoint"


def test_checkpoint_from_other_settings_starts_afresh_and_keeps_it(tmp_path):
    """A changed config is a new run: the old checkpoint is not resumed (that would mix two
    runs) and not deleted, but renamed beside the new one."""
    pretrain(tiny_settings(epochs=1), toy_images(), tmp_path, seed=0, progress=False)
    old = (tmp_path / CHECKPOINT_NAME).read_bytes()
    epochs_run = []
    pretrain(
        tiny_settings(epochs=2),
        toy_images(),
        tmp_path,
        seed=0,
        progress=False,
        on_epoch_end=lambda e, m: epochs_run.append(e),
    )
    assert epochs_run == [1, 2]
    assert (tmp_path / "resume.stale-1.pt").read_bytes() == old
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["epoch"] == 2


def test_a_checkpoint_of_other_code_is_not_resumed_and_the_log_says_why(tmp_path, caplog):
    """resume.pt records the settings file it ran under, the code's hashes included: resumed
    under changed code, the run starts over (one run never mixes two codes), with one line
    naming what changed, and the old checkpoint is kept beside it."""
    before = {**tiny_settings(epochs=1), "code": {"sdclr/methods/sdclr.py": "a" * 64}}
    pretrain(before, toy_images(), tmp_path, seed=0, progress=False)
    after = {**tiny_settings(epochs=2), "code": {"sdclr/methods/sdclr.py": "b" * 64}}
    epochs_run = []
    with caplog.at_level("WARNING", logger="sdclr.training.loop"):
        pretrain(
            after, toy_images(), tmp_path, seed=0, progress=False,
            on_epoch_end=lambda e, m: epochs_run.append(e),
        )  # fmt: skip
    assert epochs_run == [1, 2]
    [line] = [r.getMessage() for r in caplog.records if "starting afresh" in r.getMessage()]
    assert "code of sdclr/methods/sdclr.py changed" in line
    assert "pretrain.epochs 1 -> 2" in line and "resume.stale-1.pt" in line


def test_model_says_what_made_it(tmp_path):
    """model.pt carries its provenance: commit, dirty flag, package versions, device and the
    arithmetic it trained in."""
    pretrain(tiny_settings(epochs=1), toy_images(), tmp_path, seed=0, progress=False)
    made = torch.load(tmp_path / MODEL_NAME, weights_only=True)["provenance"]
    assert set(made) == {"commit", "dirty", "versions", "device", "precision"}
    assert made["device"] == "cpu" and made["precision"] == "fp32"
    assert made["versions"]["torch"] in torch.__version__


def test_training_reduces_the_loss(tmp_path):
    """Real optimisation: instance discrimination on 64 distinct images gets easier, so the
    contrastive loss of the last epochs is well below that of the first."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 14, 14), dtype=torch.uint8)
    settings = tiny_settings("simclr", epochs=10)
    settings["pretrain"].update(lr=0.2, batch_size=32)
    settings["augmentation"] = {
        "crop_size": 12,
        "scale": [0.6, 1.0],
        "jitter_p": 0.0,
        "grayscale_p": 0.0,
    }
    pretrain(settings, images, tmp_path, seed=0, progress=False)
    with open(tmp_path / LOG_NAME) as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle)]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5


def test_precision_and_compile_settings_are_part_of_the_checkpointed_settings(tmp_path):
    """pretrain.precision / channels_last / compile live in the settings a checkpoint is
    compared with: another precision is a new run (the old checkpoint is not resumed but set
    aside), and the checkpoint records the runtime its epochs ran with (fp32, contiguous on
    CPU for 'auto')."""
    settings = tiny_settings("simclr", epochs=1)
    settings["pretrain"].update(precision="auto", channels_last="auto", compile=False)
    pretrain(settings, toy_images(), tmp_path, seed=0, progress=False)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert state["runtime"] == {
        "device": "cpu",
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
    }
    changed = tiny_settings("simclr", epochs=1)
    changed["pretrain"].update(precision="bf16", channels_last="auto", compile=False)
    epochs_run = []
    pretrain(
        changed,
        toy_images(),
        tmp_path,
        seed=0,
        progress=False,
        on_epoch_end=lambda e, m: epochs_run.append(e),
    )
    assert epochs_run == [1]  # not resumed from the fp32 checkpoint
    assert (tmp_path / "resume.stale-1.pt").exists()
    resumed = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)
    assert resumed["runtime"]["precision"] == "bf16"


def test_bf16_channels_last_run_trains_and_saves_a_plain_model(tmp_path):
    """The CUDA defaults (bf16 autocast, channels-last) also run on the CPU: finite losses,
    and model.pt holds ordinary contiguous tensors."""
    settings = tiny_settings("sdclr", epochs=2)
    settings["pretrain"].update(precision="bf16", channels_last=True)
    pretrain(settings, toy_images(), tmp_path, seed=0, progress=False)
    with open(tmp_path / LOG_NAME) as handle:
        assert all(math.isfinite(float(r["loss"])) for r in csv.DictReader(handle))
    state = torch.load(tmp_path / MODEL_NAME, weights_only=False)["state_dict"]
    assert all(v.is_contiguous() for v in state.values())
