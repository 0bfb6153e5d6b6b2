"""The SimCLR view augmentation's settings (config key ``augmentation``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from sdclr.errors import ConfigError
from sdclr.settings import setting

Interpolation = Literal["bicubic", "bilinear"]
_INTERPOLATIONS = get_args(Interpolation)
# torchvision's ITU-R 601-2 luma weights (``_functional_tensor.rgb_to_grayscale``).
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
# Index of each colour op in jitter factor / order tensors (torchvision's ``fn_idx`` order).
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentConfig:
    """The SimCLR view augmentation (config key ``augmentation``); defaults: the SimCLR CIFAR
    recipe."""

    crop_size: int = setting(doc="Side of the square crop each view is resized to.", minimum=4)
    scale: tuple[float, float] = setting(
        (0.1, 1.0),
        doc="RandomResizedCrop area-fraction range.",
        exclusive_minimum=0,
        maximum=1,
        ordered=True,
    )
    ratio: tuple[float, float] = setting(
        (3 / 4, 4 / 3),
        doc="RandomResizedCrop aspect-ratio (w / h) range, sampled log-uniformly.",
        exclusive_minimum=0,
        ordered=True,
    )
    flip_p: float = setting(0.5, doc="Horizontal flip probability.", minimum=0, maximum=1)
    jitter: tuple[float, float, float, float] = setting(
        (0.4, 0.4, 0.4, 0.1),
        doc="ColorJitter strengths (brightness, contrast, saturation, hue; hue <= 0.5).",
        minimum=0,
    )
    jitter_p: float = setting(0.8, doc="Probability of the colour jitter.", minimum=0, maximum=1)
    grayscale_p: float = setting(0.2, doc="RandomGrayscale probability.", minimum=0, maximum=1)
    blur_p: float = setting(0.0, doc="Gaussian blur probability (0: none).", minimum=0, maximum=1)
    blur_sigma: tuple[float, float] = setting(
        (0.1, 2.0), doc="Blur sigma range.", exclusive_minimum=0, ordered=True
    )
    interpolation: Interpolation = setting("bicubic", doc="Resize interpolation of the crop.")

    def __post_init__(self) -> None:
        if self.jitter[HUE] > 0.5:  # the one bound that is not shared by all four strengths
            raise ConfigError(f"augmentation.jitter: hue {self.jitter[HUE]} exceeds 0.5")
