"""SDCLR: a reproducible pipeline for contrastive learning on long-tailed data."""

__version__ = "0.1.0"
