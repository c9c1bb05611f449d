"""Edge maps (AutoLink eq. 2): every keypoint pair is a segment drawn as exp(-d^2 / thickness), combined by max.

Two rasterisers give the same values and gradients:

* :func:`edge_maps_dense` is the reference: it materialises one map per edge (B x E x S x S) and takes the max.
  Readable, and the ground truth for the tests, but at K = 16 it moves ~2 GB through memory per step.
* :func:`edge_maps` processes the edges in cache-sized chunks with a running max and remembers only which edge
  won each pixel. Only the winner receives gradient from a max, so the backward pass recomputes that one segment
  per pixel: O(B x S x S) instead of O(B x E x S x S). It also flushes subnormal outputs to 0 (a change below
  1.2e-38 that keeps the decoder's convolutions off the slow subnormal path).

Coordinates are (y, x) in [-1, 1]; pixel centres are ``linspace(-1, 1, S)`` with 'ij' indexing, so keypoints from
the detector's soft-argmax and the pixels of the map share one frame. ``thickness`` is the whole denominator of the
exponent (the paper's sigma^2), in those units. Everything is computed in fp32 (float64 is kept if given): half
precision products erase the sub-pixel lines that thickness 5e-5 draws.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Elements of one (B, chunk, S, S) fp32 working tensor: small enough to stay in cache on a CPU, large enough that
# per-op overhead is amortised. CUDA prefers few large launches.
_CHUNK_ELEMENTS_CPU = 1 << 19
_CHUNK_ELEMENTS_CUDA = 1 << 25


def pair_indices(n_keypoints: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """The i < j pairs in row-major order (the order of :meth:`EdgeGraph.weights`)."""
    idx = torch.triu_indices(n_keypoints, n_keypoints, offset=1, device=device)
    return idx[0], idx[1]


def pixel_grid(
    size: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """(S*S, 2) pixel centres (y, x) in [-1, 1], 'ij' order (row-major over the image)."""
    line = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    yy, xx = torch.meshgrid(line, line, indexing="ij")
    return torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=-1)


def segment_distance_sq(points: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Squared distance from ``points`` to the segments a-b; all (..., 2), broadcast together; returns (...).

    The projection parameter is clamped to [0, 1] (beyond an end the distance is to that end point) and 1e-8 is
    added to |b - a|^2 so that coincident end points give the distance to the point, not NaN.
    """
    ab = b - a
    ap = points - a
    t = ((ap * ab).sum(-1) / ((ab * ab).sum(-1) + 1e-8)).clamp(0.0, 1.0)
    residual = ap - t.unsqueeze(-1) * ab
    return (residual * residual).sum(-1)


def _check(keypoints: Tensor, weights: Tensor, thickness: float, size: int) -> tuple[Tensor, Tensor]:
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (B, K, 2), got {tuple(keypoints.shape)}")
    k = keypoints.shape[1]
    n_edges = k * (k - 1) // 2
    if weights.shape != (n_edges,):
        raise ValueError(f"weights must be ({n_edges},) for K = {k}, got {tuple(weights.shape)}")
    if not thickness > 0 or size < 1:
        raise ValueError(f"thickness must be > 0 and size >= 1, got {thickness}, {size}")
    if keypoints.dtype not in (torch.float32, torch.float64):
        keypoints = keypoints.float()
    return keypoints, weights.to(keypoints.dtype)


def edge_maps_dense(keypoints: Tensor, weights: Tensor, thickness: float, size: int) -> Tensor:
    """Reference rasteriser: (B, K, 2) keypoints, (E,) weights -> (B, 1, S, S), via a B x E x S x S tensor."""
    keypoints, weights = _check(keypoints, weights, thickness, size)
    i, j = pair_indices(keypoints.shape[1], keypoints.device)
    grid = pixel_grid(size, keypoints.device, keypoints.dtype)  # (P, 2)
    a = keypoints[:, i].unsqueeze(2)  # (B, E, 1, 2)
    b = keypoints[:, j].unsqueeze(2)  # (B, E, 1, 2)
    d2 = segment_distance_sq(grid, a, b)  # (B, E, P)
    per_edge = weights.view(1, -1, 1) * torch.exp(-d2 / thickness)  # (B, E, P)
    best = per_edge.max(dim=1).values  # (B, P)
    return best.view(-1, 1, size, size)


def _chunk_edges(batch: int, size: int, n_edges: int, device: torch.device) -> int:
    budget = _CHUNK_ELEMENTS_CUDA if device.type == "cuda" else _CHUNK_ELEMENTS_CPU
    return max(1, min(n_edges, budget // max(1, batch * size * size)))


@torch.no_grad()
def _winning_edges(keypoints: Tensor, weights: Tensor, thickness: float, size: int) -> Tensor:
    """Index of the edge with the largest w * exp(-d^2 / thickness) at every pixel: (B, S*S) int64.

    Scores are compared in log space, log w - d^2 / thickness, which has the same order and saves an exp per
    element. The distance is separable over rows and columns: the projection t = sy[row] + sx[col], so per
    element only t, the residual and its square are computed (no catastrophic |ap|^2 - t^2 |ab|^2 form).
    """
    bsz, k, _ = keypoints.shape
    i, j = pair_indices(k, keypoints.device)
    n_edges = i.numel()
    line = torch.linspace(-1.0, 1.0, size, device=keypoints.device, dtype=keypoints.dtype)  # (S,)
    log_w = torch.log(weights)  # (E,)
    inv_thick = 1.0 / thickness
    chunk = _chunk_edges(bsz, size, n_edges, keypoints.device)

    best_score = torch.full((bsz, size, size), -math.inf, device=keypoints.device, dtype=keypoints.dtype)
    best_edge = torch.zeros((bsz, size, size), device=keypoints.device, dtype=torch.long)
    for start in range(0, n_edges, chunk):
        sl = slice(start, min(n_edges, start + chunk))
        a = keypoints[:, i[sl]]  # (B, C, 2)
        ab = keypoints[:, j[sl]] - a  # (B, C, 2)
        inv_len = 1.0 / ((ab * ab).sum(-1) + 1e-8)  # (B, C)
        ap_y = line.view(1, 1, -1) - a[..., 0:1]  # (B, C, S)   row offsets
        ap_x = line.view(1, 1, -1) - a[..., 1:2]  # (B, C, S)   column offsets
        ab_y = ab[..., 0, None, None]  # (B, C, 1, 1)
        ab_x = ab[..., 1, None, None]
        s_y = ap_y * (ab[..., 0:1] * inv_len[..., None])  # (B, C, S)
        s_x = ap_x * (ab[..., 1:2] * inv_len[..., None])  # (B, C, S)
        t = (s_y.unsqueeze(-1) + s_x.unsqueeze(-2)).clamp_(0.0, 1.0)  # (B, C, S, S)
        r_y = torch.addcmul(ap_y.unsqueeze(-1), t, ab_y, value=-1.0)  # (B, C, S, S)
        r_x = torch.addcmul(ap_x.unsqueeze(-2), t, ab_x, value=-1.0)  # (B, C, S, S)
        d2 = r_y.mul_(r_y).addcmul_(r_x, r_x)  # (B, C, S, S)
        score = torch.add(log_w[sl].view(1, -1, 1, 1), d2, alpha=-inv_thick)  # (B, C, S, S)
        value, index = score.max(dim=1)  # (B, S, S)
        better = value > best_score
        best_score = torch.where(better, value, best_score)
        best_edge = torch.where(better, index + start, best_edge)
    return best_edge.view(bsz, size * size)


def _winner_map(keypoints: Tensor, weights: Tensor, edge: Tensor, thickness: float, size: int) -> Tensor:
    """w * exp(-d^2 / thickness) of the given edge per pixel, (B, S*S); differentiable, same formula as dense."""
    i, j = pair_indices(keypoints.shape[1], keypoints.device)
    grid = pixel_grid(size, keypoints.device, keypoints.dtype)  # (P, 2)
    a = torch.gather(keypoints, 1, i[edge].unsqueeze(-1).expand(-1, -1, 2))  # (B, P, 2)
    b = torch.gather(keypoints, 1, j[edge].unsqueeze(-1).expand(-1, -1, 2))  # (B, P, 2)
    d2 = segment_distance_sq(grid, a, b)  # (B, P)
    return weights[edge] * torch.exp(-d2 / thickness)


class _EdgeMaps(torch.autograd.Function):
    """Max over edges without storing the per-edge maps: forward keeps the winning edge, backward recomputes it."""

    @staticmethod
    def forward(ctx, keypoints: Tensor, weights: Tensor, thickness: float, size: int) -> Tensor:  # type: ignore[override]
        edge = _winning_edges(keypoints, weights, thickness, size)  # (B, P)
        with torch.no_grad():
            out = _winner_map(keypoints, weights, edge, thickness, size)  # (B, P)
            # exp(-d^2/thickness) leaves a ring of subnormal values (< 1.2e-38) around every line; subnormal inputs
            # make the decoder's first convolution several times slower on CPUs, and they are 0 for any purpose
            out.masked_fill_(out < torch.finfo(out.dtype).tiny, 0.0)
        ctx.save_for_backward(keypoints, weights, edge)
        ctx.thickness = thickness
        ctx.size = size
        return out.view(-1, 1, size, size)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:  # type: ignore[override]
        keypoints, weights, edge = ctx.saved_tensors
        need_kp, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with torch.enable_grad():
            kp = keypoints.detach().requires_grad_(need_kp)
            w = weights.detach().requires_grad_(need_w)
            out = _winner_map(kp, w, edge, ctx.thickness, ctx.size)
            inputs = [x for x, need in ((kp, need_kp), (w, need_w)) if need]
            grads = iter(torch.autograd.grad(out, inputs, grad_out.reshape(out.shape)))
        grad_kp = next(grads) if need_kp else None
        grad_w = next(grads) if need_w else None
        return grad_kp, grad_w, None, None


def edge_maps(keypoints: Tensor, weights: Tensor, thickness: float, size: int) -> Tensor:
    """Fast rasteriser: same values and gradients as :func:`edge_maps_dense`, (B, K, 2), (E,) -> (B, 1, S, S)."""
    keypoints, weights = _check(keypoints, weights, thickness, size)
    return _EdgeMaps.apply(keypoints, weights, float(thickness), int(size))


class EdgeGraph(nn.Module):
    """The fully connected keypoint graph with one learnt weight per edge, shared by all images.

    ``logits`` is a K x K matrix of which only the strict upper triangle is used (the reference layout, so that
    the parameter count is K^2). The weight is softplus(sklr * logit): sklr multiplies the edges' effective
    learning rate under Adam-type optimisers without a second parameter group.
    """

    def __init__(self, n_keypoints: int, sklr: float = 512.0, floor: float = 0.0) -> None:
        super().__init__()
        self.n_keypoints = n_keypoints
        self.sklr = float(sklr)
        self.floor = float(floor)  # every edge keeps at least this weight (0: the reference)
        self.logits = nn.Parameter((torch.randn(n_keypoints, n_keypoints) / 10 - 4) / self.sklr)  # (K, K)
        i, j = pair_indices(n_keypoints)
        self.register_buffer("pair_i", i, persistent=False)  # (E,)
        self.register_buffer("pair_j", j, persistent=False)  # (E,)

    def weights(self) -> Tensor:
        return F.softplus(self.sklr * self.logits[self.pair_i, self.pair_j]) + self.floor  # (E,)

    def weight_matrix(self) -> Tensor:
        upper = torch.triu(F.softplus(self.sklr * self.logits) + self.floor, diagonal=1)  # (K, K)
        return upper + upper.transpose(0, 1)

    def forward(self, keypoints: Tensor, thickness: float, size: int) -> Tensor:
        with torch.autocast(device_type=keypoints.device.type, enabled=False):
            weights = self.weights().float()
            if keypoints.dtype != torch.float64:
                keypoints = keypoints.float()
            return edge_maps(keypoints, weights, thickness, size)  # (B, 1, S, S)
