"""Reconstruction losses and VGG16 weight loading (local files; offline failure), all without the network."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

from dkp_tui.config import LossConfig
from dkp_tui.errors import DkpError
from dkp_tui.model.perceptual import (
    VGG16_FILE,
    ReconstructionLoss,
    build_reconstruction_loss,
    load_vgg16_features,
    vgg16_cache_path,
)


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    """A full torchvision VGG16 state dict (features.N.*, classifier.N.*) with random weights."""
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).state_dict()


@pytest.fixture(scope="module")
def vgg_pth(vgg_state, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "my-vgg16.pth"
    torch.save(vgg_state, path)
    return path


@pytest.fixture(scope="module")
def vgg_features_pth(vgg_state, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The features.N.* half only: 58 MB instead of 528 MB, for the tests that only need a working trunk."""
    path = tmp_path_factory.mktemp("vgg") / "vgg16-features.pth"
    torch.save({k: v for k, v in vgg_state.items() if k.startswith("features.")}, path)
    return path


def _check_loaded(features: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    assert len(features) == 23 and not features.training
    assert all(not p.requires_grad for p in features.parameters())
    for index in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21):
        assert torch.equal(features[index].weight, state[f"features.{index}.weight"])
        assert torch.equal(features[index].bias, state[f"features.{index}.bias"])


def test_loads_full_state_dict_pth(vgg_pth: Path, vgg_state) -> None:
    _check_loaded(load_vgg16_features(str(vgg_pth)), vgg_state)


def test_loads_safetensors_and_features_only(vgg_state, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    features = {k: v.contiguous() for k, v in vgg_state.items() if k.startswith("features.")}
    path = tmp_path / "vgg16.safetensors"
    save_file(features, str(path))
    _check_loaded(load_vgg16_features(str(path)), vgg_state)
    bare = tmp_path / "bare.pth"
    torch.save({k[len("features.") :]: v for k, v in features.items()}, bare)
    _check_loaded(load_vgg16_features(str(bare)), vgg_state)


def test_bad_local_files_raise_dkp_error(tmp_path: Path) -> None:
    with pytest.raises(DkpError, match="not found"):
        load_vgg16_features(str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DkpError, match="cannot read"):
        load_vgg16_features(str(junk))
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(DkpError, match="not a VGG16 state dict"):
        load_vgg16_features(str(partial))


def test_offline_without_weights_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    calls: list[str] = []

    def no_network(*args, **kwargs):
        calls.append("urlopen")
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "urlopen", no_network)  # torch.hub imported it by name
    real_loader = torch.hub.load_state_dict_from_url

    def loader(url, *args, **kwargs):
        calls.append(url)
        return real_loader(url, *args, **kwargs)  # finds no cached file, tries urlopen, which refuses

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", loader)
    assert vgg16_cache_path() == tmp_path / "torch-home" / "hub" / "checkpoints" / VGG16_FILE
    start = time.monotonic()
    with pytest.raises(DkpError) as info:
        build_reconstruction_loss(LossConfig(reconstruction="vgg16"))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "\n" not in message
    assert str(vgg16_cache_path()) in message and VGG16_FILE in message
    assert "--perceptual-weights" in message and "loss.perceptual_weights" in message
    assert calls[0].endswith(VGG16_FILE) and "urlopen" in calls  # went through the weights API, never the net


def test_cached_file_is_used_offline(vgg_state, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    cache = vgg16_cache_path()
    cache.parent.mkdir(parents=True)
    torch.save({k: v for k, v in vgg_state.items() if k.startswith("features.")}, cache)
    _check_loaded(load_vgg16_features(), vgg_state)


@pytest.mark.parametrize("kind", ["vgg16", "vgg16-l2", "pixel"])
def test_reconstruction_loss_zero_iff_equal(kind: str, vgg_features_pth: Path) -> None:
    loss = ReconstructionLoss(kind, str(vgg_features_pth), size=32)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    assert loss(x, y).item() > 1e-3


def test_vgg_loss_gradient_reaches_recon_only(vgg_features_pth: Path) -> None:
    loss = ReconstructionLoss("vgg16", str(vgg_features_pth), size=32)
    loss.train()
    assert not loss.vgg.training
    recon = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    target = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    value = loss(recon, target)
    value.backward()
    assert recon.grad is not None and recon.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None for p in loss.parameters())
    # both execution modes give the same value
    unbatched = ReconstructionLoss("vgg16", str(vgg_features_pth), size=32, batched=False)
    torch.testing.assert_close(
        unbatched(recon.detach(), target.detach()), value.detach(), rtol=1e-4, atol=1e-6
    )


def test_pixel_loss_value_and_unknown_kind() -> None:
    loss = ReconstructionLoss("pixel")
    a = torch.zeros(1, 3, 8, 8)
    assert loss(a, a + 0.5).item() == pytest.approx(0.5)
    with pytest.raises(DkpError):
        ReconstructionLoss("vgg19")


def test_low_memory_mode_gives_the_same_loss_gradients_and_batchnorm_stats(vgg_features_pth: Path) -> None:
    """`train.low_memory` takes the VGG loss in micro-batches and recomputes the decoder's full-resolution blocks:
    nothing may change. Three images in micro-batches of 2 check the weighting of an uneven last micro-batch."""
    from dkp_tui.config import ModelConfig
    from dkp_tui.model.autolink import AutoLink

    cfg = ModelConfig(n_keypoints=4, image_size=64, width=0.125, thickness=1e-3)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mask = torch.ones(3, 1, 64, 64)
    results = []
    for low_memory in (False, True):
        torch.manual_seed(0)
        model = AutoLink(cfg).train()
        model.decoder.checkpoint_full_res = low_memory
        loss_fn = ReconstructionLoss("vgg16", str(vgg_features_pth), size=64, batched=False,
                                     micro_batch=2 if low_memory else 0)
        loss = loss_fn(model(x, mask).recon, x)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        buffers = {n: b.clone() for n, b in model.decoder.named_buffers()}
        results.append((loss.detach(), grads, buffers))
    (loss_a, grads_a, bufs_a), (loss_b, grads_b, bufs_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-6, atol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    # A conv bias feeding a BatchNorm has an exactly zero gradient; what backward returns there is rounding noise
    # (~1e-7 here, thread-count dependent), so such tensors are only required to stay at noise level.
    scale = max(float(g.abs().max()) for g in grads_a.values())
    for name, grad in grads_a.items():
        if float(grad.abs().max()) < 1e-5 * scale:
            assert float(grads_b[name].abs().max()) < 1e-5 * scale, name
            continue
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    for name, value in bufs_a.items():  # running stats updated once, not twice
        assert torch.equal(bufs_b[name], value), name
