"""AutoLink: reference parameter counts, the data path into the decoder, KD embeddings, and a 4-image overfit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dkp_tui.config import KD_LAYERS, ModelConfig
from dkp_tui.model.autolink import AutoLink, count_parameters, init_weights, kd_embedding, kd_features
from dkp_tui.model.detector import Detector
from dkp_tui.model.edges import EdgeGraph
from dkp_tui.model.perceptual import ReconstructionLoss


@pytest.mark.parametrize(
    ("k", "detector", "decoder"),
    [(10, 7_729_354, 17_972_904), (16, 7_736_272, 17_973_060)],
)
def test_reference_parameter_counts(k: int, detector: int, decoder: int) -> None:
    model = AutoLink(ModelConfig(n_keypoints=k))
    assert count_parameters(model.detector) == detector
    # "decoder" in the reference = U-Net + alpha + the K x K edge matrix
    assert count_parameters(model) - count_parameters(model.detector) == decoder
    assert count_parameters(model.decoder) == 17_972_803
    assert isinstance(model.edges, EdgeGraph) and model.edges.logits.numel() == k * k
    assert isinstance(model.alpha, torch.nn.Parameter) and model.alpha.item() == 1.0 and model.alpha.ndim == 0


def _small(k: int = 8) -> AutoLink:
    return AutoLink(ModelConfig(n_keypoints=k, width=0.125, image_size=64, thickness=1e-3))


def test_forward_shapes_and_decoder_input() -> None:
    torch.manual_seed(0)
    model = _small()
    seen: dict[str, torch.Tensor] = {}
    det_forward, dec_forward = model.detector.forward, model.decoder.forward

    def spy_det(x, features=()):
        seen["det_in"] = x
        return det_forward(x, features)

    def spy_dec(masked, edge_map):
        seen["masked"], seen["edge"] = masked, edge_map
        return dec_forward(masked, edge_map)

    model.detector.forward = spy_det
    model.decoder.forward = spy_dec
    with torch.no_grad():
        model.alpha.fill_(0.5)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    mask = model.make_mask(2, generator=torch.Generator().manual_seed(0))
    out = model(image, mask, features=("tc1",))
    assert out.recon.shape == (2, 3, 64, 64) and out.edge_map.shape == (2, 1, 64, 64)
    assert out.edge_map.dtype == torch.float32 and set(out.det.features) == {"tc1"}
    assert torch.equal(seen["det_in"], image)  # the detector sees the unmasked image
    torch.testing.assert_close(seen["masked"], 0.5 * image * mask)
    assert torch.equal(seen["edge"], out.edge_map)


def test_init_weights_reference_scheme() -> None:
    conv = torch.nn.Conv2d(64, 64, 3)
    torch.nn.init.constant_(conv.bias, 3.0)
    init_weights(conv)
    assert torch.all(conv.bias == 0)
    # Kaiming normal, a = 0.2, fan_in: std = sqrt(2 / (1 + a^2)) / sqrt(fan_in)
    expected = (2.0 / 1.04) ** 0.5 / (64 * 9) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)


def test_kd_layers_shapes() -> None:
    det = Detector(16).eval()
    needed = sorted({f for layer in KD_LAYERS for f in kd_features(layer)})
    with torch.no_grad():
        out = det(torch.randn(1, 3, 128, 128), features=needed)
    shapes = {layer: tuple(kd_embedding(out, layer).shape[1:]) for layer in KD_LAYERS}
    assert shapes == {
        "output": (16, 32, 32),
        "output_prob": (16, 32, 32),
        "mid": (256, 16, 16),
        "mid2": (128, 32, 32),
        "early": (64, 64, 64),
        "res2": (128, 32, 32),
        "res3": (256, 16, 16),
        "res4": (512, 8, 8),
    }
    assert kd_embedding(out, "output") is out.logits  # before the softmax
    assert (
        kd_features("output") == () and kd_features("mid") == ("tc1",) and kd_features("early") == ("res1",)
    )
    with pytest.raises(ValueError):
        kd_features("nope")
    with pytest.raises(ValueError):
        kd_embedding(det(torch.randn(1, 3, 128, 128)), "mid")  # feature not requested


@pytest.fixture
def one_thread():
    """Intra-op threads spin at barriers: on a shared 2-core machine one thread is 2x slower at best, 20x faster
    at worst, so this 30-step loop stays a few seconds whatever else runs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_loss_falls_when_overfitting_four_images(one_thread) -> None:
    torch.manual_seed(0)
    model = AutoLink(ModelConfig(n_keypoints=8, width=0.125, image_size=64, thickness=1e-3))
    # four smooth images: coloured blobs on grey
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    images = []
    for cy, cx in [(-0.4, -0.3), (0.2, 0.5), (0.5, -0.5), (-0.1, 0.1)]:
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.05)
        blob = torch.where(blob < 1e-6, 0.0, blob)  # no subnormal pixels: they slow CPU convolutions ~10x
        images.append(torch.stack([blob, 0.5 * blob, -blob]) * 0.8)
    images = torch.stack(images)  # (4, 3, 64, 64) in [-1, 1]
    loss_fn = ReconstructionLoss("pixel")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        out = model(images, model.make_mask(4, generator=gen))
        loss = loss_fn(out.recon, images)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
    assert model.edges.logits.grad is not None and model.edges.logits.grad.abs().sum() > 0
    assert model.alpha.grad is not None
    assert F.l1_loss(out.recon, images).item() < losses[0]
