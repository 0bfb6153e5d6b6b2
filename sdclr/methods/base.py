"""The contract every pretraining method follows and the extensions that compose with it
(their registries and a run's composition: ``sdclr.methods.registry``).

A **method** declares its hyperparameters (``setting`` fields), builds its model, may act at
the start of every epoch, and turns two augmented views of a batch into a loss. An
**extension** composes with any method whose contract it needs, by configuration::

    methods:
      bcl_d:
        algorithm: sdclr                      # the method
        bcl: {num_ops: 2, min_magnitude: 5}   # an extension: its key is its name

An extension may keep per-sample state keyed by the sample's index in the pretraining set
(checkpointed), set a per-sample augmentation, change the method's settings per epoch (and
log them), observe every sample's loss or every step's indices, leave per-sample numbers with
the final model (``sample_statistics``), add a term to the loss of the two views' projections
(``loss_term``: in SDCLR the dense and the pruned branch's, so it trains both), choose each
epoch's images from the pretraining set and a pool (``select_samples``) and leave files in the
run directory (``records``). The loop calls only the hooks below; it never asks which method
it runs. Adding one is a module in ``sdclr/methods/`` decorated with ``@register`` /
``@register_extension``, plus its entry in the config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from sdclr import distributed
from sdclr.methods.losses import nt_xent
from sdclr.models import ContrastiveModel, ModelConfig, build_model
from sdclr.settings import load, setting


class Extension:
    """Base class of a composable part: subclasses set ``name`` (its config key) and
    ``Settings``, and override the hooks they need."""

    name: ClassVar[str]
    #: Whether it needs every sample's loss (``observe_losses``); the loss is then reduced
    #: per sample (a different summation order than the plain mean).
    needs_sample_losses: ClassVar[bool] = False
    #: Whether it replaces the method's contrastive loss (``contrastive_loss``); one at most.
    replaces_loss: ClassVar[bool] = False
    #: Whether that loss needs the views' backbone features (pre-projection) too.
    needs_features: ClassVar[bool] = False
    #: Whether it observes the indices of every step's samples (``observe_step``).
    needs_step_indices: ClassVar[bool] = False
    #: Whether it adds a term to the loss (``loss_term``); several may.
    adds_loss_term: ClassVar[bool] = False

    @dataclasses.dataclass(frozen=True)
    class Settings:
        pass

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def check(self, method: Method, section: str) -> None:
        """Raise ``ConfigError`` (naming ``section``) when it cannot compose with ``method``."""

    @classmethod
    def check_model(cls, settings: Any, model: ModelConfig, where: str) -> None:
        """Raise ``ConfigError`` (naming ``where``, its settings' key) when its ``settings``
        cannot work with a dataset's ``model`` (a size it must fit); the config calls it for
        every dataset, before any job."""

    @classmethod
    def check_entry(cls, entry: dict[str, Any], where: str) -> None:
        """Raise ``ConfigError`` (naming ``where``) when a method's config entry, as the user
        wrote it, conflicts with it (a setting it overrides, say); the config calls it."""

    def setup(self, num_samples: int, device: torch.device) -> None:
        """Allocate per-sample state for a pretraining set of ``num_samples`` images."""

    def setup_model(self, model: nn.Module) -> None:
        """After ``setup``, before a checkpoint is restored: the network the method trains,
        for state sized by it (e.g. by the projection dimension)."""

    def on_epoch_start(self, method: Method, epoch: int) -> dict[str, float]:
        """Before epoch ``epoch`` (0-based); returns numbers worth logging."""
        return {}

    def select_samples(
        self, method: Method, model: nn.Module, images: torch.Tensor, own: int, epoch: int
    ) -> torch.Tensor | None:
        """Before epoch ``epoch``: the positions in ``images`` (the pretraining set's ``own``
        images, then a pool's) it trains on; None: the pretraining set (the first wins)."""
        return None

    def begin_step(self, indices: torch.Tensor) -> None:
        """Before a step's loss, with ``needs_step_indices``: as ``observe_step``."""

    def records(self) -> dict[str, Any]:
        """Run-directory files (name -> JSON content) the loop rewrites every epoch."""
        return {}

    def augment_views(
        self, views: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Further augment float views ``[2B, C, H, W]`` (row r is a view of sample
        ``indices[r]``)."""
        return views

    def contrastive_loss(
        self,
        method: Method,
        z1: torch.Tensor,
        z2: torch.Tensor,
        h1: torch.Tensor | None,
        h2: torch.Tensor | None,
        per_sample: bool,
    ) -> torch.Tensor:
        """The loss of projections ``z1``, ``z2`` (``h1``, ``h2``: their backbone features when
        ``needs_features``) in place of the method's NT-Xent (only with ``replaces_loss``)."""
        raise NotImplementedError

    def loss_term(self, method: Method, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor | None:
        """A scalar added to the contrastive loss of projections ``z1``, ``z2`` (only with
        ``adds_loss_term``), or None for none this step. It is called inside the (compiled)
        loss with the same projections as the contrastive loss: in SDCLR ``z1`` is the dense
        branch's and ``z2`` the pruned branch's, so gradients through both train both branches.
        With per-sample losses it is added to every sample's loss (their mean stays the
        loss), while ``observe_losses`` sees the contrastive loss without it."""
        raise NotImplementedError

    def observe_losses(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Every sample's contrastive loss of a step (detached; without the terms of
        ``loss_term``), by index in the pretraining set."""

    def observe_step(self, indices: torch.Tensor) -> None:
        """After a step's loss: the pretraining-set indices of the samples it covered (every
        rank's, in the order of the loss's rows: row k and row k + N are views of
        ``indices[k]``), with ``needs_step_indices``."""

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """After epoch ``epoch`` (0-based); returns numbers worth logging."""
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass

    def sample_statistics(self) -> dict[str, torch.Tensor]:
        """Per-sample numbers (one row per pretraining-set position) kept with the final model
        for the run's reports; none by default."""
        return {}


class Method:
    """Base class: subclasses set ``name`` and ``Hyperparameters`` and implement ``loss``."""

    name: ClassVar[str]

    @dataclasses.dataclass(frozen=True)
    class Hyperparameters:
        """SimCLR's hyperparameters (config key ``methods.<run>.hyperparameters``)."""

        temperature: float = setting(0.2, doc="NT-Xent temperature.", exclusive_minimum=0)
        head_hidden_layers: int = setting(
            1, doc="Hidden Linear + BN + ReLU blocks of the projection head.", minimum=0
        )

    dual_bn: ClassVar[bool] = False

    def __init__(
        self, hyperparameters: dict[str, Any] | None = None, section: str = "hyperparameters"
    ) -> None:
        self.hparams = load(self.Hyperparameters, hyperparameters, section)
        #: The NT-Xent temperature of the current epoch (an extension may schedule it).
        self.temperature: float | None = getattr(self.hparams, "temperature", None)
        #: The extensions composed with it (``sdclr.methods.registry.create_method`` adds them).
        self.extensions: list[Extension] = []
        #: The step's per-sample contrastive losses when a ``loss_term`` was added to them
        #: (set inside the loss, read by ``training_loss`` for the observers).
        self.sample_contrastive_losses: torch.Tensor | None = None
        #: The pretraining set's labels when the loop knows them (for extensions' records).
        self.sample_labels: torch.Tensor | None = None

    def build_model(self, model_config: ModelConfig, in_channels: int) -> ContrastiveModel:
        """The network this method trains."""
        return build_model(
            model_config, in_channels, self.hparams.head_hidden_layers, dual_bn=self.dual_bn
        )

    @property
    def needs_features(self) -> bool:
        """Whether the loss needs the backbone features of the views (an extension's)."""
        return any(e.needs_features for e in self.extensions)

    def encode(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(projections, backbone features) of ``x``; the features only when the loss needs
        them (otherwise one ``model(x)`` call, the compiled one on the fast path)."""
        if not self.needs_features:
            return model(x), None
        features = model.backbone(x)
        return model.head(features), features

    def contrastive_loss(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        h1: torch.Tensor | None = None,
        h2: torch.Tensor | None = None,
        per_sample: bool = False,
    ) -> torch.Tensor:
        """NT-Xent of the two views' projections at this epoch's temperature, or the loss of
        the extension that replaces it; plus the extensions' ``loss_term`` if any."""
        loss = self._pair_loss(z1, z2, h1, h2, per_sample)
        added = None
        for extension in self.extensions:
            if extension.adds_loss_term:
                term = extension.loss_term(self, z1, z2)
                if term is not None:
                    added = term if added is None else added + term
        if added is None:
            return loss
        if per_sample:  # what the per-sample observers see: the contrastive loss alone
            self.sample_contrastive_losses = loss.detach()
        return loss + added

    def _pair_loss(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        h1: torch.Tensor | None,
        h2: torch.Tensor | None,
        per_sample: bool,
    ) -> torch.Tensor:
        for extension in self.extensions:
            if extension.replaces_loss:
                return extension.contrastive_loss(self, z1, z2, h1, h2, per_sample)
        return nt_xent(z1, z2, self.temperature, per_sample)

    # -- what a method implements ------------------------------------------------------------

    def on_epoch_start(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Called before every epoch (0-based); returns numbers worth logging."""
        return {}

    def loss(
        self, model: nn.Module, view1: torch.Tensor, view2: torch.Tensor, per_sample: bool = False
    ) -> torch.Tensor:
        """The training loss of one batch given its two augmented views (with ``per_sample``:
        the loss of each sample, whose mean is the loss)."""
        raise NotImplementedError

    # -- what the training loop calls ----------------------------------------------------------

    def setup(self, num_samples: int, device: torch.device, model: nn.Module | None = None) -> None:
        """Every extension's ``setup``, then, given the network, its ``setup_model``."""
        for extension in self.extensions:
            extension.setup(num_samples, device)
            if model is not None:
                extension.setup_model(model)

    def begin_epoch(self, model: nn.Module, epoch: int) -> dict[str, float]:
        logs = {}
        for extension in self.extensions:  # first: a scheduled setting applies to this epoch
            logs.update(extension.on_epoch_start(self, epoch))
        return {**self.on_epoch_start(model, epoch), **logs}

    def augment_views(
        self, views: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        for extension in self.extensions:
            views = extension.augment_views(views, indices, generator)
        return views

    def training_loss(
        self,
        model: nn.Module,
        view1: torch.Tensor,
        view2: torch.Tensor,
        indices: torch.Tensor,
        loss_fn: Callable[..., torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The loss to minimise; extensions that need them observe every sample's loss.

        ``loss_fn`` stands in for :meth:`loss` (same arguments): the training step passes
        ``torch.compile(method.loss)`` there, so that the whole forward -- for SDCLR both
        branches and the loss -- is one compiled graph, while the observers' bookkeeping
        stays eager.
        """
        loss_fn = loss_fn or self.loss
        observers = [e for e in self.extensions if e.needs_sample_losses]
        step_observers = [e for e in self.extensions if e.needs_step_indices]
        if observers or step_observers:
            all_indices = distributed.gather(indices)  # the loss covers every rank's samples
        for extension in step_observers:
            extension.begin_step(all_indices)
        if observers:
            losses = loss_fn(model, view1, view2, per_sample=True)
            observed = self.sample_contrastive_losses  # set when a loss term was added
            self.sample_contrastive_losses = None
            observed = losses.detach() if observed is None else observed
        else:
            loss = loss_fn(model, view1, view2)
        for extension in observers:
            extension.observe_losses(all_indices, observed)
        for extension in step_observers:
            extension.observe_step(all_indices)
        return losses.mean() if observers else loss

    def end_epoch(self, epoch: int) -> dict[str, float]:
        logs = {}
        for extension in self.extensions:
            logs.update(extension.on_epoch_end(epoch))
        return logs

    def select_samples(
        self, model: nn.Module, images: torch.Tensor, own: int, epoch: int
    ) -> torch.Tensor | None:
        """The positions epoch ``epoch`` trains on (an extension's), or None."""
        chosen = [e.select_samples(self, model, images, own, epoch) for e in self.extensions]
        return next((c for c in chosen if c is not None), None)

    def records(self) -> dict[str, Any]:
        """Every extension's run-directory files."""
        return {k: v for e in self.extensions for k, v in e.records().items()}

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every extension's per-sample state (for the checkpoint)."""
        return {e.name: e.state_dict() for e in self.extensions}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        for extension in self.extensions:
            extension.load_state_dict(state.get(extension.name, {}))

    def sample_statistics(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every extension's per-sample numbers for the reports (those that keep any)."""
        found = {e.name: e.sample_statistics() for e in self.extensions}
        return {name: values for name, values in found.items() if values}
