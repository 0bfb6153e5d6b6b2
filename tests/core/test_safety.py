"""Bad and hostile inputs: no file we read runs code, every bad input is one line naming the
file and the fix, nothing good is lost, and identical runs write identical bytes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sdclr.data.image_dataset import ImageDataset, load_saved_dataset
from sdclr.data.splits import (
    LongTailConfig,
    load_split,
    make_longtail_split,
    planned_sizes,
    save_split,
)
from sdclr.errors import ConfigError, InputError, NoSpaceError, RunDirectoryBusy
from sdclr.io import write_text
from sdclr.pipeline import config as sdclr_config
from sdclr.probes import load_backbone
from sdclr.signals import Terminated, exit_on_sigterm
from sdclr.torch_files import torch_load, torch_save
from sdclr.training.loop import CHECKPOINT_NAME, LOG_NAME, MODEL_NAME
from sdclr.training.runlock import run_directory_lock
from tests.helpers import pretrain, tiny_settings, toy_images

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
PYTHON = sys.executable


class _CreatesAFile:
    """A pickle payload: unpickling it would call ``open(marker, "w")``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["checkpoint", "model", "dataset"])
def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path, kind):
    """A resume.pt, model.pt or dataset.pt whose pickle would run code is refused with a
    message naming the file, and the code never runs (its file is never created)."""
    marker = tmp_path / "pwned"
    crafted = tmp_path / {"checkpoint": CHECKPOINT_NAME, "model": MODEL_NAME}.get(kind, "d.pt")
    torch.save({"epoch": 1, "payload": _CreatesAFile(marker)}, crafted)
    with pytest.raises(InputError, match=rf"{crafted}.*could run code: refused"):
        if kind == "checkpoint":
            pretrain(tiny_settings(), toy_images(), tmp_path, seed=0, progress=False)
        elif kind == "model":
            load_backbone(crafted)
        else:
            load_saved_dataset(crafted)
    assert not marker.exists()


def test_checkpoints_of_the_previous_format_still_load(tmp_path):
    """What earlier versions wrote (plain tensors, numbers, strings, lists, dicts, a generator
    state) loads under weights_only: old checkpoints resume instead of being refused."""
    old = {
        "epoch": 2,
        "model": {"w": torch.ones(3)},
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": []},
        "generator": torch.Generator().get_state(),
        "history": [{"epoch": 1, "loss": 5.0, "seconds": 1.5}],
        "settings": {"method": {"name": "sdclr"}},
        "seed": 0,
        "runtime": {"device": "cpu", "precision": "fp32"},
        "augment_generators": None,
    }
    torch.save(old, tmp_path / "old.pt")  # written to a path, as the old code did
    assert torch_load(tmp_path / "old.pt")["history"] == old["history"]


def test_a_garbage_file_is_called_corrupt(tmp_path):
    """A file that is not a torch archive is reported as corrupt, naming it and the fix."""
    (tmp_path / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="model.pt is corrupt or not a torch file; delete it"):
        torch_load(tmp_path / "model.pt", "pretrained model")


def _dataset(labels: list[int], num_classes: int, name: str = "toy") -> ImageDataset:
    n = len(labels)
    return ImageDataset(
        name=name,
        train_images=torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
        train_labels=torch.tensor(labels),
        test_images=torch.zeros(num_classes, 1, 4, 4, dtype=torch.uint8),
        test_labels=torch.arange(num_classes),
        classes=[str(c) for c in range(num_classes)],
    )


def _split_for(dataset: ImageDataset, path: Path) -> Path:
    config = LongTailConfig(validation_per_class=2, n_max=10, imbalance_ratio=5)
    record = make_longtail_split(dataset.train_labels.numpy(), dataset.num_classes, config, "a", 1)
    save_split(record, path)
    return path


def test_a_split_made_for_another_dataset_is_refused(tmp_path):
    """A split whose indices are in range but were cut from another dataset's labels is an
    error naming the split file and the fix, not a silent training run."""
    ours = _dataset([c for c in range(3) for _ in range(20)], 3)
    other = _dataset([c % 3 for c in range(60)], 3, "other")  # same size, other labels
    split = _split_for(ours, tmp_path / "split1.json")
    assert load_split(split, ours)["num_classes"] == 3
    with pytest.raises(InputError, match=rf"split file {split} was not made for dataset other"):
        load_split(split, other)


def test_a_split_with_indices_out_of_range_is_one_clear_error(tmp_path):
    """Indices beyond the dataset give an InputError naming the file, not an IndexError."""
    big = _dataset([c for c in range(3) for _ in range(20)], 3)
    small = _dataset([c for c in range(3) for _ in range(13)], 3, "small")
    split = _split_for(big, tmp_path / "split1.json")
    with pytest.raises(InputError, match=rf"split file {split}: .* indices outside \[0, 39\)"):
        load_split(split, small)


def test_a_split_for_another_class_count_is_refused(tmp_path):
    """A split of a 3-class dataset used with a 4-class one names both class counts."""
    ours = _dataset([c for c in range(3) for _ in range(20)], 3)
    four = _dataset([c % 4 for c in range(60)], 4, "four")
    split = _split_for(ours, tmp_path / "split1.json")
    with pytest.raises(InputError, match="is for 3 classes but dataset four has 4"):
        load_split(split, four)


def test_a_batch_larger_than_the_pretraining_set_is_a_config_error():
    """Where the pretraining set's size follows from the config, a larger batch stops the
    config check, naming the key and the largest batch that fits."""
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["fmnist_lt"]["pretrain"]["batch_size"] = 500  # |D_i| = 492
    with pytest.raises(ConfigError, match=r"fmnist_lt.pretrain.batch_size: 500 .* at most 492"):
        sdclr_config.normalize_config(config)
    config["datasets"]["fmnist_lt"]["pretrain"]["batch_size"] = 492
    sdclr_config.normalize_config(config)


@pytest.mark.parametrize("n_max, balanced", [(10, None), (None, None), (8, 5)])
def test_planned_sizes_are_the_sizes_of_the_cut_split(n_max, balanced):
    """The sizes the config check predicts are the sizes make_longtail_split then cuts."""
    labels = np.repeat(np.arange(4), 14)
    config = LongTailConfig(
        validation_per_class=2, n_max=n_max, imbalance_ratio=5, balanced_per_class=balanced
    )
    record = make_longtail_split(labels, 4, config, "toy", 1)
    planned = planned_sizes(config, 4, 14)
    assert planned == {"D_i": record["sizes"]["D_i"], "D_b": record["sizes"]["D_b"]}


def test_a_batch_larger_than_the_pretraining_set_stops_the_job_before_training(tmp_path):
    """Where the size is known only from the data (image lists, reference splits), the job
    stops before its first step with the key and the fix; nothing is written."""
    settings = tiny_settings()
    settings["pretrain"]["batch_size"] = 64
    with pytest.raises(ConfigError, match=r"toy.pretrain.batch_size: 64 .* at most 48"):
        pretrain(settings, toy_images(48), tmp_path, seed=0, progress=False)
    assert not (tmp_path / CHECKPOINT_NAME).exists() and not (tmp_path / LOG_NAME).exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask):
    """Files written through temporaries are 0666 minus the umask (group-readable on shared
    storage where the umask says so), not mkstemp's 0600."""
    old = os.umask(umask)
    try:
        write_text(tmp_path / "table.md", "x")
        torch_save(tmp_path / "model.pt", {"a": torch.ones(2)})
    finally:
        os.umask(old)
    for name in ("table.md", "model.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_identical_runs_write_byte_identical_files(tmp_path):
    """Two identical pretraining runs write the same bytes: checkpoint, model and log (the
    archive inside a .pt names no temporary file, and wall-clock times live in timing.csv)."""
    for run in ("a", "b"):
        pretrain(tiny_settings(epochs=2), toy_images(), tmp_path / run, seed=0, progress=False)
    for name in (CHECKPOINT_NAME, MODEL_NAME, LOG_NAME):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert "views_per_second" in (tmp_path / "a" / "timing.csv").read_text()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)])
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_says_so_and_keeps_the_last_checkpoint(tiny_disk):
    """A checkpoint that does not fit says "no space left on <dir>", keeps the previous
    checkpoint intact and leaves no temporary file."""
    checkpoint = tiny_disk / CHECKPOINT_NAME
    torch_save(checkpoint, {"epoch": 1, "w": torch.ones(10)})
    with pytest.raises(NoSpaceError, match=rf"no space left on {tiny_disk} while writing resume"):
        torch_save(checkpoint, {"epoch": 2, "w": torch.ones(200_000)})
    assert torch_load(checkpoint)["epoch"] == 1
    assert sorted(p.name for p in tiny_disk.iterdir()) == [CHECKPOINT_NAME]


def test_weights_that_do_not_fit_their_metadata_are_one_line(tmp_path):
    """A model.pt whose weights belong to another width is one line naming the file, not
    hundreds of size-mismatch lines."""
    pretrain(tiny_settings(epochs=1), toy_images(), tmp_path, seed=0, progress=False)
    state = torch_load(tmp_path / MODEL_NAME)
    state["model_config"]["width"] = 0.125
    torch_save(tmp_path / MODEL_NAME, state)
    with pytest.raises(InputError) as err:
        load_backbone(tmp_path / MODEL_NAME)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / MODEL_NAME) in message
    assert "weights do not fit the model its metadata describes" in message


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_job_on_a_run_directory_is_refused_and_a_killed_holder_frees_it(tmp_path):
    """While one process pretrains in a run directory, another stops at once naming the
    holder's pid; once the holder is SIGKILLed (an orphan), the directory is free again."""
    holder = _python(
        f"""
        import time
        from sdclr.training.runlock import run_directory_lock
        with run_directory_lock({str(tmp_path)!r}):
            print("locked", flush=True)
            time.sleep(120)
        """
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirectoryBusy, match=rf"pid {holder.pid} on .* wait for that job"):
            with run_directory_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_directory_lock(tmp_path):
        pass


def test_sigterm_during_a_checkpoint_write_leaves_no_temporary(tmp_path):
    """SIGTERM while a checkpoint is being written: the write finishes (or is removed), the
    job exits 143, no temporary file is left and the checkpoint on disk loads."""
    target = tmp_path / CHECKPOINT_NAME
    torch_save(target, {"epoch": 1})
    child = _python(
        f"""
        import time
        import torch
        import sdclr.torch_files as sio
        from sdclr.signals import exit_on_sigterm
        save = torch.save
        def slow_save(obj, handle):
            handle.write(b"partial")
            print("writing", flush=True)
            time.sleep(3)
            handle.seek(0)
            save(obj, handle)
        torch.save = slow_save
        with exit_on_sigterm():
            sio.torch_save({str(target)!r}, {{"epoch": 2}})
            print("after the write", flush=True)
            time.sleep(30)
        """
    )
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 143
    assert "after the write" not in out  # the job stopped as soon as the file was in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert torch_load(target)["epoch"] == 2


def test_a_signal_inside_a_write_is_raised_after_it(tmp_path):
    """In-process: SIGTERM sent in the middle of a write raises Terminated only once the
    file is in place, and no temporary is left."""
    target = tmp_path / "log.csv"
    with pytest.raises(Terminated), exit_on_sigterm():
        import sdclr.torch_files as sio

        with sio.atomic_path(target) as tmp:
            tmp.write_text("complete")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs here, and must wait
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]


def test_a_crafted_cifar_batch_is_refused_and_never_runs(tmp_path):
    """CIFAR's own format is a pickle: a batch whose pickle would run code is refused with
    the file's name, and the code never runs; real batches (numpy arrays) still load."""
    import pickle

    from fakes import write_fake_cifar10

    from sdclr.data.sources import load_dataset

    write_fake_cifar10(tmp_path / "raw")
    assert load_dataset({"name": "cifar10"}, tmp_path / "raw", download=False).num_classes == 10
    marker = tmp_path / "pwned"
    batch = tmp_path / "raw" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({"data": _CreatesAFile(marker), "labels": []}))
    with pytest.raises(InputError, match=r"data_batch_3 is not a readable CIFAR batch .*open"):
        load_dataset({"name": "cifar10"}, tmp_path / "raw", download=False)
    assert not marker.exists()
