"""The README's "Adding a method" example is real code: it registers, composes and trains."""

from pathlib import Path

from sdclr.methods import EXTENSIONS, METHODS
from sdclr.training.loop import LOG_NAME, pretrain
from tests.test_train import tiny_settings, toy_images

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_method_and_extension_example_trains(tmp_path):
    """The example module in the README defines a method and an extension that use every
    hook; a run of them trains and logs the extension's per-epoch setting."""
    readme = (ROOT / "README.md").read_text()
    code = readme[readme.index("# sdclr/methods/my_method.py") :]
    code = code[: code.index("```")]
    try:
        exec(compile(code, "README.md", "exec"), {})
        settings = tiny_settings("my_method", epochs=2)
        settings["method"].update(
            name="mine",
            hyperparameters={},
            extensions={"hardness_memory": {"momentum": 0.95}},
        )
        summary = pretrain(settings, toy_images(48), tmp_path, seed=0, progress=False)
    finally:
        METHODS.pop("my_method", None)
        EXTENSIONS.pop("hardness_memory", None)
    assert summary["final_loss"] > 0
    header = (tmp_path / LOG_NAME).read_text().splitlines()[0]
    assert header == "epoch,loss,lr,temperature"
