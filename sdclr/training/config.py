"""The pretraining loop's settings (config key ``pretrain``), declared once with the paper's
defaults, and the typed job the loop runs (:class:`PretrainJob`, from a settings file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sdclr.data.augment.config import AugmentConfig
from sdclr.models import ModelConfig
from sdclr.settings import load, setting


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings (config key ``pretrain``); defaults are the paper's."""

    epochs: int = setting(doc="Pretraining epochs.", minimum=1)
    batch_size: int = setting(512, doc="Images per step (the global batch).", minimum=2)
    lr: float = setting(0.5, doc="Peak learning rate (after warm-up).", exclusive_minimum=0)
    momentum: float = setting(0.9, doc="SGD momentum.", minimum=0, maximum=1)
    weight_decay: float = setting(1e-4, doc="SGD weight decay.", minimum=0)
    warmup_epochs: float = setting(10, doc="Linear warm-up length in epochs.", minimum=0)
    final_lr: float = setting(1e-6, doc="Learning rate at the end of the cosine.", minimum=0)
    checkpoint_every: int = setting(10, doc="Epochs between checkpoints.", minimum=1)
    precision: Literal["auto", "bf16", "tf32", "fp32"] = setting(
        "auto",
        doc="Arithmetic: fp32 = IEEE float32 everywhere, the reference's (TF32 off on CUDA); "
        "tf32 = float32 with TF32 convs and matmuls on CUDA; bf16 = bf16 autocast on CUDA "
        "(NT-Xent stays fp32); auto = bf16 on CUDA, fp32 on CPU.",
    )
    channels_last: Literal["auto", True, False] = setting(
        "auto", doc="Channels-last convolutions: auto = on CUDA only."
    )
    compile: Literal["auto", True, False] = setting(
        "auto",
        doc="torch.compile the method's forward and loss as one graph: auto = on one-GPU "
        "CUDA runs (a win for SimCLR and SDCLR on an H100), off on CPU, where compiling takes "
        "minutes, and off for several GPUs.",
    )
    sync_batchnorm: bool = setting(
        True,
        doc="With several processes, BatchNorm statistics over the global batch (as the "
        "reference's DDP runs; dual BN stays dual); false: each rank's own.",
    )
    drop_last: bool = setting(
        False,
        doc="Drop each epoch's last partial batch; the reference keeps it (CIFAR-10-LT: 21 "
        "steps of 512 and one of 413), see sdclr/training/batches.py.",
    )
    gpus: int = setting(
        1,
        doc="GPUs (processes) of one job; more than 1 runs under torchrun with the global "
        "batch split between them (sdclr/distributed.py).",
        minimum=1,
    )


@dataclass(frozen=True)
class MethodSpec:
    """The method a run trains: its run name, registered algorithm, pretraining set, and its
    hyperparameters and extensions' settings as the config gives them (the method's registry
    types them: ``sdclr.methods.create_method``)."""

    name: str
    algorithm: str
    pretrain_set: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    remove_difficult: dict[str, Any] | None = None

    @classmethod
    def from_settings(cls, spec: dict[str, Any]) -> MethodSpec:
        return cls(
            name=spec["name"],
            algorithm=spec["algorithm"],
            pretrain_set=spec.get("pretrain_set", "D_i"),
            hyperparameters=dict(spec.get("hyperparameters") or {}),
            extensions={k: dict(v or {}) for k, v in (spec.get("extensions") or {}).items()},
            remove_difficult=spec.get("remove_difficult"),
        )


@dataclass(frozen=True)
class PretrainJob:
    """One pretraining job, typed from its settings file (``sdclr.pipeline.resolve``): what the
    loop reads. ``identity`` is the settings file itself, every setting and the hash of each
    source file the job runs: a checkpoint is resumed only under the same identity."""

    dataset: str
    method: MethodSpec
    model: ModelConfig
    augmentation: AugmentConfig
    pretrain: PretrainConfig
    device: str
    identity: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> PretrainJob:
        """The job of a settings file (validated: errors name the config key)."""
        spec = MethodSpec.from_settings(settings["method"])
        where = f"methods.{spec.name}"
        return cls(
            dataset=settings.get("dataset", ""),
            method=spec,
            model=load(ModelConfig, settings.get("model"), f"{where}.model"),
            augmentation=load(AugmentConfig, settings.get("augmentation"), "augmentation"),
            pretrain=load(PretrainConfig, settings.get("pretrain"), f"{where}.pretrain"),
            device=settings.get("device", "auto"),
            identity=settings,
        )
