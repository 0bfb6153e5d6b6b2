"""The live view of pretraining: live.tsv's columns, one log line per epoch, resume."""

import logging

import pytest
import torch

from sdclr.training.live import COLUMNS, LiveLog, format_duration, log_line, read_rows
from sdclr.training.run_files import LIVE_NAME
from tests.helpers import pretrain, tiny_settings, toy_images


class Interrupt(Exception):
    pass


def test_a_tiny_run_writes_one_live_row_per_epoch_and_one_log_line(tmp_path, caplog):
    """live.tsv has the documented columns and a row per epoch (loss, lr, the temperature,
    images/s, an ETA that reaches 0); each epoch logs one readable line."""
    torch.set_num_threads(1)
    caplog.set_level(logging.INFO, logger="sdclr.training.loop")
    pretrain(tiny_settings("sdclr", epochs=3), toy_images(), tmp_path, seed=0, progress=False)
    text = (tmp_path / LIVE_NAME).read_text()
    assert text.splitlines()[0].split("\t") == list(COLUMNS)
    rows = read_rows(tmp_path / LIVE_NAME)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {r["epochs"] for r in rows} == {"3"} and {r["temperature"] for r in rows} == {"0.2"}
    assert all(float(r["images_per_second"]) > 0 and float(r["loss"]) > 0 for r in rows)
    assert rows[-1]["eta_seconds"] == "0"
    elapsed = [float(r["elapsed_seconds"]) for r in rows]
    assert elapsed == sorted(elapsed) and elapsed[-1] > 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3 loss ")
    assert " T 0.2 " in lines[0] and " img/s " in lines[0] and lines[-1].endswith("ETA 0s")


def test_a_scheduled_temperature_is_the_live_temperature(tmp_path):
    """With a temperature schedule, the column follows the epoch's scheduled value."""
    settings = tiny_settings("simclr", epochs=2)
    settings["method"]["hyperparameters"] = {}
    settings["method"]["extensions"] = {
        "temperature_schedule": {"t_min": 0.1, "t_max": 1.0, "period": 2}
    }
    pretrain(settings, toy_images(), tmp_path, seed=0, progress=False)
    temperatures = [float(r["temperature"]) for r in read_rows(tmp_path / LIVE_NAME)]
    assert temperatures == pytest.approx([0.55, 0.1])  # e counts from 1: half way, then t_min


def test_a_resumed_run_cuts_the_live_file_back_to_its_checkpoint(tmp_path):
    """Killed after epoch 3 with the checkpoint at epoch 2, the rerun redoes epoch 3: the
    live file then holds epochs 1-4 once each, elapsed time carried over."""
    torch.set_num_threads(1)
    settings = tiny_settings("simclr", epochs=4)
    settings["pretrain"]["checkpoint_every"] = 2

    def stop_after_three(epoch, metrics):
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        pretrain(settings, toy_images(), tmp_path, seed=0, progress=False,
                 on_epoch_end=stop_after_three)  # fmt: skip
    before = read_rows(tmp_path / LIVE_NAME)
    assert [r["epoch"] for r in before] == ["1", "2", "3"]
    pretrain(settings, toy_images(), tmp_path, seed=0, progress=False)
    after = read_rows(tmp_path / LIVE_NAME)
    assert [r["epoch"] for r in after] == ["1", "2", "3", "4"]
    assert after[:2] == before[:2]
    carried = float(before[1]["elapsed_seconds"]) + float(after[2]["seconds"])
    assert float(after[2]["elapsed_seconds"]) >= carried - 0.1  # rounded to 0.1 s


def test_a_row_cut_short_and_a_file_of_other_columns_are_dropped(tmp_path):
    """A half-written last row (a kill mid-write) and an older layout do not survive."""
    path = tmp_path / LIVE_NAME
    live = LiveLog(path, epochs=5, start_epoch=0)
    live.record({"epoch": 1, "loss": 5.0, "lr": 0.1}, 2.0, 100, None)
    with open(path, "a") as handle:
        handle.write("2\t5\t4.9")
    assert [r["epoch"] for r in read_rows(path)] == ["1"]
    again = LiveLog(path, epochs=5, start_epoch=1)
    row = again.record({"epoch": 2, "loss": 4.9, "lr": 0.1}, 3.0, 100, 0.5)
    assert [r["epoch"] for r in read_rows(path)] == ["1", "2"]
    assert row["elapsed_seconds"] == "5.0" and row["eta_seconds"] == "9"
    assert log_line(row) == ("epoch 2/5 loss 4.9000 lr 0.1 T 0.5 33 img/s 3.0s elapsed 5s ETA 9s")
    path.write_text("epoch,loss\n1,5.0\n")
    assert read_rows(path) == []
    assert format_duration(3725) == "1h02m" and format_duration(245) == "4m05s"
