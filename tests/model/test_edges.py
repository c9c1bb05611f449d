"""Edge maps: closed-form values at hand-picked pixels, and the fast rasteriser equal to the dense reference."""

from __future__ import annotations

import math

import pytest
import torch

from dkp_tui.model.edges import EdgeGraph, edge_maps, edge_maps_dense, pair_indices, segment_distance_sq

RASTERISERS = [edge_maps_dense, edge_maps]


def test_segment_distance_sq_hand_values() -> None:
    a = torch.tensor([0.0, -0.5])
    b = torch.tensor([0.0, 0.5])
    points = torch.tensor(
        [
            [0.0, 0.0],  # on the segment
            [-1.0, 0.0],  # 1 above its middle
            [0.0, 1.0],  # 0.5 beyond end b
            [-1.0, -1.0],  # beyond end a, diagonal: 1 + 0.25
            [0.3, 0.25],  # perpendicular foot inside
        ]
    )
    expected = torch.tensor([0.0, 1.0, 0.25, 1.25, 0.09])
    torch.testing.assert_close(segment_distance_sq(points, a, b), expected, atol=1e-6, rtol=0)
    # degenerate segment: the distance to the point, no NaN
    same = segment_distance_sq(points, a, a)
    torch.testing.assert_close(same, ((points - a) ** 2).sum(-1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("raster", RASTERISERS)
def test_edge_map_closed_form_single_edge(raster) -> None:
    # grid linspace(-1, 1, 5): pixel (r, c) sits at (y, x) = (-1 + r / 2, -1 + c / 2)
    kp = torch.tensor([[[0.0, -0.5], [0.0, 0.5]]])
    w = torch.tensor([0.7])
    thick = 0.5
    m = raster(kp, w, thick, 5)
    assert m.shape == (1, 1, 5, 5)
    cases = {(2, 2): 0.0, (0, 2): 1.0, (2, 4): 0.25, (0, 0): 1.25, (2, 1): 0.0, (4, 3): 1.0}
    for (r, c), d2 in cases.items():
        assert m[0, 0, r, c].item() == pytest.approx(0.7 * math.exp(-d2 / thick), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("raster", RASTERISERS)
def test_edge_map_is_max_not_sum(raster) -> None:
    # three keypoints, edges (0,1), (0,2), (1,2) in row-major order
    kp = torch.tensor([[[0.0, -0.5], [0.0, 0.5], [0.5, 0.0]]])
    w = torch.tensor([0.3, 0.5, 0.2])
    m = raster(kp, w, 1.0, 5)
    # at (0, 0): edge (0,1) passes through (d2 = 0); edges (0,2), (1,2) are at d2 = 0.125
    assert m[0, 0, 2, 2].item() == pytest.approx(max(0.3, 0.5 * math.exp(-0.125)), rel=1e-5)
    assert m[0, 0, 2, 2].item() < 0.3 + 0.5 * math.exp(-0.125) - 0.1


def test_pair_order_row_major() -> None:
    i, j = pair_indices(4)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _inputs(k: int, batch: int, dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    kp = (torch.rand(batch, k, 2, generator=g, dtype=dtype) * 1.6 - 0.8).requires_grad_()
    w = (torch.rand(k * (k - 1) // 2, generator=g, dtype=dtype) * 0.5 + 0.01).requires_grad_()
    return kp, w


@pytest.mark.parametrize(
    ("k", "batch", "size", "thick"),
    [(4, 2, 128, 5e-5), (10, 2, 64, 1e-3), (16, 2, 64, 5e-4), (16, 1, 128, 5e-5)],
)
def test_fast_equals_dense_values_and_gradients(k: int, batch: int, size: int, thick: float) -> None:
    for dtype in (torch.float64, torch.float32):
        kp, w = _inputs(k, batch, dtype, seed=k)
        upstream = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(1), dtype=dtype)
        results = []
        for raster in RASTERISERS:
            m = raster(kp, w, thick, size)
            g_kp, g_w = torch.autograd.grad((m * upstream).sum(), [kp, w])
            results.append((m, g_kp, g_w))
        (m0, gk0, gw0), (m1, gk1, gw1) = results
        assert m1.dtype == dtype and m1.shape == (batch, 1, size, size)
        torch.testing.assert_close(m1, m0, atol=1e-5, rtol=0)
        # fp32 gradients are sums over thousands of pixels in a different order: compare relative to their scale
        scale_k = 1.0 if dtype == torch.float64 else max(1.0, gk0.abs().max().item())
        scale_w = 1.0 if dtype == torch.float64 else max(1.0, gw0.abs().max().item())
        torch.testing.assert_close(gk1, gk0, atol=1e-5 * scale_k, rtol=0)
        torch.testing.assert_close(gw1, gw0, atol=1e-5 * scale_w, rtol=0)
        assert gk0.abs().max() > 0 and gw0.abs().max() > 0


def test_fast_gradient_only_for_requested_inputs() -> None:
    kp, w = _inputs(5, 2, torch.float32, seed=3)
    m = edge_maps(kp, w.detach(), 1e-3, 32)
    (g,) = torch.autograd.grad(m.sum(), [kp])
    assert g.shape == kp.shape and torch.isfinite(g).all()


def test_coincident_keypoints_are_finite() -> None:
    kp = torch.zeros(1, 3, 2, requires_grad=True)
    w = torch.full((3,), 0.5, requires_grad=True)
    for raster in RASTERISERS:
        m = raster(kp, w, 1e-3, 16)
        m.sum().backward()
        assert torch.isfinite(m).all() and torch.isfinite(kp.grad).all() and torch.isfinite(w.grad).all()
        kp.grad = None
        w.grad = None


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        edge_maps(torch.zeros(1, 4, 2), torch.ones(5), 1e-3, 8)
    with pytest.raises(ValueError):
        edge_maps_dense(torch.zeros(4, 2), torch.ones(6), 1e-3, 8)


def test_edge_graph_weights_and_fp32_under_autocast() -> None:
    torch.manual_seed(0)
    graph = EdgeGraph(6, sklr=512.0)
    assert graph.logits.shape == (6, 6)
    w = graph.weights()
    assert w.shape == (15,)
    # init (N(0,1)/10 - 4)/sklr -> softplus(~-4) ~ 0.018
    assert 0.01 < w.mean().item() < 0.03
    mat = graph.weight_matrix()
    torch.testing.assert_close(mat, mat.T)
    assert torch.all(mat.diagonal() == 0)
    i, j = pair_indices(6)
    torch.testing.assert_close(mat[i, j], w)
    kp = torch.rand(2, 6, 2) * 2 - 1
    ref = graph(kp, 1e-3, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = graph(kp.bfloat16(), 1e-3, 32)
    assert out.dtype == torch.float32 and out.shape == (2, 1, 32, 32)
    torch.testing.assert_close(out, edge_maps(kp.bfloat16().float(), w, 1e-3, 32))
    assert ref.dtype == torch.float32


def test_running_max_across_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import dkp_tui.model.edges as edges_module

    monkeypatch.setattr(edges_module, "_CHUNK_ELEMENTS_CPU", 1)  # one edge per chunk: 45 merges
    kp, w = _inputs(10, 2, torch.float64, seed=5)
    dense = edge_maps_dense(kp, w, 1e-3, 32)
    fast = edge_maps(kp, w, 1e-3, 32)
    torch.testing.assert_close(fast, dense, atol=1e-12, rtol=0)
    g_dense = torch.autograd.grad(dense.sum(), [kp, w])
    g_fast = torch.autograd.grad(fast.sum(), [kp, w])
    for a, b in zip(g_fast, g_dense, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_fast_never_allocates_per_edge_maps() -> None:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LargestTensor(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor):
                    self.numel = max(self.numel, leaf.numel())
            return out

    # the probe sees the dense version's B x E x S x S (checked small, the dense version is slow)
    kp, w = _inputs(4, 1, torch.float32, seed=0)
    with LargestTensor() as probe:
        edge_maps_dense(kp, w, 5e-5, 32).sum().backward()
    assert probe.numel >= 1 * 6 * 32 * 32
    # the fast version at 128 px, K = 16: chunks far below the 7.9 M elements of the per-edge maps
    batch, k, size = 4, 16, 128
    kp, w = _inputs(k, batch, torch.float32, seed=0)
    with LargestTensor() as probe:
        edge_maps(kp, w, 5e-5, size).sum().backward()
    assert probe.numel <= batch * (k * (k - 1) // 2) * size * size // 8


def test_edge_floor_adds_a_minimum_weight_to_every_edge():
    from dkp_tui.model.edges import EdgeGraph

    torch.manual_seed(0)
    plain = EdgeGraph(5)
    floored = EdgeGraph(5, floor=0.05)
    floored.load_state_dict(plain.state_dict())
    torch.testing.assert_close(floored.weights(), plain.weights() + 0.05)
    matrix = floored.weight_matrix()
    assert float(matrix.diagonal().abs().max()) == 0.0  # no self-edges
    torch.testing.assert_close(matrix, plain.weight_matrix() + 0.05 * (1 - torch.eye(5)))
