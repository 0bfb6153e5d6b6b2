"""Removing difficult examples from D_i before pretraining (Zhang, Cui, Li, Wang, arXiv
2501.01317, "removal of difficult examples"): a workflow stage of its own.

A removal run (config ``removal_methods``) names a *selector*, another run of the config
whose pretrained encoder (same dataset, split and seed) embeds ``D_i``; the stage
``select_difficult`` scores every sample of ``D_i`` with the paper's label-free band rule and
writes the removal record ``results/removal/{dataset}/{method}/split{k}/seed{s}.json`` (which
samples, from which classes, with the D_i counts); the run's pretraining reads the record
and trains on the samples kept. The labels are used only to write the per-class counts.

The rule (``sdclr.methods.difficult_examples`` states the in-batch form): with ``s_ij`` the
cosine similarity of the selector's backbone features of samples i and j of D_i (centre
crop, no augmentation) over every pair i != j,

    p_ij  = 1[ Sim_posLow <= s_ij < Sim_posHigh ]       (thresholds ranked over all pairs)
    d_i   = sum_j p_ij                                   (i's number of difficult pairs)

and the ``ceil(fraction |D_i|)`` samples with the largest ``d_i`` (ties: the lower position
in D_i first) are removed.

What the paper leaves open (or what we could not read of it), and our choices:

* The paper removes samples but its selection of *samples* for removal could not be read
  (secondary notes of the paper give the pair rule above for the in-batch detector and an
  8 %-per-class softmax-margin selection with labels for its similarity estimates). We use
  the paper's label-free pair rule on D_i and turn pairs into samples by counting each
  sample's difficult pairs; no labels select anything.
* Features: a model the pipeline already trains (the selector run, SimCLR in the paper
  configs), because the in-batch detector's features come from the model being trained and
  an offline selection needs one trained model. A selector must not itself remove examples.
* Defaults ``fraction`` 0.1 (the paper removes 8-20 % of the data), posHigh 0.1 and posLow
  0.5 (the band just below the most similar pairs; with posLow near 100 % almost every pair
  would count and ``d_i`` would stop telling samples apart).
* The thresholds are exact over the ``|D_i| (|D_i| - 1)`` ordered pairs (``torch.kthvalue``,
  memory ~ 3 |D_i|^2 floats: 1.5 GB for CIFAR-10-LT's 11,165 images).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sdclr.errors import ConfigError
from sdclr.groups import class_groups
from sdclr.methods.difficult_examples import band_mask
from sdclr.settings import load, setting


@dataclasses.dataclass(frozen=True)
class RemovalSettings:
    """Removing difficult examples of D_i (a removal run's ``remove``)."""

    fraction: float = setting(
        0.1, doc="Fraction of D_i removed (the paper: 8-20 %).", exclusive_minimum=0, maximum=0.9
    )
    pos_high: float = setting(
        0.1, doc="posHigh: the most similar fraction of pairs, never difficult.", minimum=0
    )
    pos_low: float = setting(
        0.5, doc="posLow: pairs ranked from posHigh down to posLow are difficult.", maximum=1
    )


def difficulty_scores(features: torch.Tensor, pos_high: float, pos_low: float) -> torch.Tensor:
    """``d_i = sum_j p_ij``: each sample's number of difficult pairs among all pairs i != j
    of ``features`` (cosine similarity; thresholds ranked over those pairs)."""
    z = F.normalize(features.float(), dim=1)
    s = z @ z.T
    candidates = ~torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    return band_mask(s, candidates, pos_high, pos_low).sum(dim=1)


def select_difficult(scores: torch.Tensor, fraction: float) -> np.ndarray:
    """Positions of the ``ceil(fraction n)`` largest ``scores`` (ties: lower position first),
    sorted."""
    values = scores.cpu().numpy().astype(np.int64)
    count = math.ceil(fraction * values.size)
    order = np.lexsort((np.arange(values.size), -values))  # by -score, then position
    return np.sort(order[:count])


def removal_record(
    split: dict[str, Any], labels: np.ndarray, removed_positions: np.ndarray, settings: dict
) -> dict[str, Any]:
    """The readable record: settings, counts per class (ordered by D_i frequency, with the
    class's Many/Medium/Few group) and the removed and kept training-set indices."""
    d_i = np.asarray(split["indices"]["D_i"], dtype=np.int64)
    removed = d_i[removed_positions]
    kept = np.delete(d_i, removed_positions)
    num_classes = split["num_classes"]
    before = np.bincount(labels[d_i], minlength=num_classes)
    gone = np.bincount(labels[removed], minlength=num_classes)
    names = split.get("classes") or [str(c) for c in range(num_classes)]
    group_of = {
        c: name
        for name, members in class_groups(before, settings["groups"]).items()
        for c in members
    }
    per_class = [
        {
            "class": int(c),
            "name": names[c],
            "group": group_of.get(c, ""),
            "D_i": int(before[c]),
            "removed": int(gone[c]),
            "kept": int(before[c] - gone[c]),
            "removed_percent": round(100.0 * gone[c] / max(before[c], 1), 2),
        }
        for c in sorted(range(num_classes), key=lambda c: (-before[c], c))
    ]
    return {
        "method": settings["method"],
        "selector": settings["selector"],
        "dataset": settings["dataset"],
        "split": split["split"],
        "remove": settings["remove"],
        "sizes": {"D_i": len(d_i), "removed": len(removed), "kept": len(kept)},
        "per_class": per_class,
        "removed_indices": removed.tolist(),
        "kept_indices": kept.tolist(),
    }


def check_selector(run: str, selector: str, methods: dict[str, Any], where: str) -> None:
    """A selector is another run of the config that removes nothing itself."""
    if selector == run:
        raise ConfigError(f"{where}.selector: a run cannot select its own difficult examples")
    if selector not in methods:
        raise ConfigError(
            f"{where}.selector: {selector!r} is not a method of this config; known: "
            f"{', '.join(sorted(methods))}"
        )
    if "remove_difficult" in methods[selector]:
        raise ConfigError(f"{where}.selector: {selector!r} removes examples itself; pick another")


def merge_removal_methods(config: dict[str, Any]) -> dict[str, Any]:
    """The config with each of ``removal_methods`` (a list, so that dvc.yaml can iterate its
    entries with their selectors) merged into ``methods`` as an entry carrying
    ``remove_difficult: {selector, fraction, pos_high, pos_low}``; checked."""
    methods = dict(config["methods"])
    for i, run in enumerate(config.get("removal_methods") or []):
        name, where = run["name"], f"removal_methods[{i}] ({run['name']})"
        if name in methods:
            raise ConfigError(f"{where}: name {name!r} is also a method; rename one of them")
        if run.get("pretrain_set", "D_i") != "D_i":
            raise ConfigError(f"{where}.pretrain_set: a removal run pretrains on D_i")
        rule = load(RemovalSettings, run.get("remove"), f"{where}.remove")
        if not rule.pos_high < rule.pos_low:
            raise ConfigError(f"{where}.remove: pos_high {rule.pos_high} must be below pos_low")
        entry = {k: v for k, v in run.items() if k not in ("name", "selector", "remove")}
        entry["remove_difficult"] = {"selector": run["selector"], **dataclasses.asdict(rule)}
        methods[name] = entry
    for i, run in enumerate(config.get("removal_methods") or []):
        where = f"removal_methods[{i}] ({run['name']})"
        check_selector(run["name"], run["selector"], methods, where)
    return {**config, "methods": methods}


def removal_settings(config: dict[str, Any], dataset: str, method: str) -> dict[str, Any]:
    """Everything one selection job depends on (``sdclr.pipeline.config.job_settings``)."""
    entry = config["datasets"][dataset]
    rule = dict(entry["methods"][method]["remove_difficult"])
    return {
        "dataset": dataset,
        "method": method,
        "selector": rule.pop("selector"),
        "remove": rule,
        "groups": dict(entry.get("groups") or {"kind": "thirds"}),
        "crop_size": entry["augmentation"]["crop_size"],
        "device": entry["device"],
    }
