"""The method registry and the SimCLR / SDCLR training steps."""

import pytest
import torch

from sdclr.methods import METHODS, create_method, get_method, nt_xent
from sdclr.models import ModelConfig, branch


def test_registry_knows_simclr_and_sdclr_and_names_them_on_error():
    """An unknown method name fails with the list of known ones."""
    assert {"simclr", "sdclr"} <= set(METHODS)
    with pytest.raises(ValueError, match="known methods: sdclr, simclr"):
        get_method("byol")


def test_unknown_hyperparameter_is_named():
    """A misspelt hyperparameter is refused with the method's real ones."""
    with pytest.raises(ValueError, match="prune_rati0"):
        create_method("sdclr", {"prune_rati0": 0.9})
    assert create_method("sdclr", {"prune_ratio": 0.3}).hparams.prune_ratio == 0.3


def _sdclr_setup():
    torch.manual_seed(0)
    method = create_method("sdclr", {"prune_ratio": 0.9, "temperature": 0.2})
    model = method.build_model(ModelConfig(width=0.125, projection_dim=16), in_channels=3).train()
    method.on_epoch_start(model, 0)
    v1, v2 = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    return method, model, v1, v2


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_sdclr_single_backward_equals_the_reference_two_detached_backwards():
    """One backward of NT-Xent(z_dense, z_pruned) gives the same gradients as the reference's
    two backward passes (each with the other branch's projections detached)."""
    method, model, v1, v2 = _sdclr_setup()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss = method.loss(model, v1, v2)
    loss.backward()
    fast = _grads(model)

    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    z_dense = model(v1)
    with branch(model, pruned=True):
        z_pruned = model(v2)
    nt_xent(z_dense, z_pruned.detach(), 0.2).backward()
    nt_xent(z_dense.detach(), z_pruned, 0.2).backward()
    reference = _grads(model)
    assert fast.keys() == reference.keys()
    for name in fast:
        assert torch.allclose(fast[name], reference[name], atol=1e-6, rtol=1e-4), name


def test_sdclr_trains_both_branches_and_their_own_bn():
    """Dense and pruned BatchNorm affine parameters both receive gradients; masked conv weights
    get gradient only from the dense branch."""
    method, model, v1, v2 = _sdclr_setup()
    method.loss(model, v1, v2).backward()
    bn = model.backbone.stem[1]
    assert bn.bns[0].weight.grad.abs().sum() > 0
    assert bn.bns[1].weight.grad.abs().sum() > 0


def test_simclr_loss_is_nt_xent_of_one_joint_forward():
    """SimCLR's loss equals NT-Xent of the two views' projections from one forward."""
    torch.manual_seed(0)
    method = create_method("simclr", {"temperature": 0.5})
    model = method.build_model(ModelConfig(width=0.125, projection_dim=16), in_channels=3).train()
    v1, v2 = torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    loss = method.loss(model, v1, v2)
    model.load_state_dict(state)
    z = model(torch.cat([v1, v2]))
    assert loss.item() == pytest.approx(nt_xent(*z.chunk(2), 0.5).item(), rel=1e-6)


def test_a_new_method_module_is_registered_without_other_edits():
    """Dropping one module with an @register class into sdclr/methods is all it takes: a fresh
    interpreter importing sdclr.methods knows it."""
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    import sdclr.methods as methods_package

    name = f"zz_test_{uuid.uuid4().hex[:8]}"
    module = Path(methods_package.__path__[0]) / f"{name}.py"
    module.write_text(
        "from sdclr.methods.base import Method\nfrom sdclr.methods.registry import register\n"
        "from sdclr.methods.losses import nt_xent\n\n\n"
        f"@register\nclass Toy(Method):\n    name = {name!r}\n\n"
        "    def loss(self, model, view1, view2):\n"
        "        return nt_xent(model(view1), model(view2), self.hparams.temperature)\n"
    )
    try:
        code = (
            f"from sdclr.methods import create_method; "
            f"print(create_method({name!r}, {{'temperature': 0.3}}).hparams.temperature)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == "0.3", out.stderr
    finally:
        module.unlink()
