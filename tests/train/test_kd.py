"""The cosine KD loss and the frozen teacher: zero at agreement, gradient to the student only, teacher unchanged."""

from __future__ import annotations

import pytest
import torch

from dkp_tui.model.detector import Detector
from dkp_tui.train.kd import FrozenTeacher, kd_cosine_loss


@pytest.mark.parametrize("reduce", ["flatten", "channel"])
def test_kd_loss_zero_for_equal_positive_otherwise(reduce: str) -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 8, 16, 16, generator=g)
    assert kd_cosine_loss(z, z.clone(), reduce).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_cosine_loss(z, 3.0 * z, reduce).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    other = torch.randn(4, 8, 16, 16, generator=g)
    value = kd_cosine_loss(z, other, reduce).item()
    assert 0.5 < value < 1.5  # random directions: cos ~ 0
    assert kd_cosine_loss(z, -z, reduce).item() == pytest.approx(2.0, abs=1e-5)


def test_kd_loss_flatten_matches_hand_formula_and_is_fp32() -> None:
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(2, 2, 1, 1)
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).view(2, 2, 1, 1)
    # cosines 0 and 1 -> 1 - mean = 0.5
    assert kd_cosine_loss(s, t).item() == pytest.approx(0.5)
    out = kd_cosine_loss(s.bfloat16(), t.bfloat16())
    assert out.dtype == torch.float32
    with pytest.raises(ValueError):
        kd_cosine_loss(s, t[:1])
    with pytest.raises(ValueError):
        kd_cosine_loss(s, t, reduce="mean")


@pytest.fixture
def one_thread():
    """Intra-op threads spin at barriers; on a shared 2-core machine one thread keeps this test to seconds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_gradient_reaches_only_the_student_and_teacher_never_changes(one_thread) -> None:
    torch.manual_seed(0)
    student = Detector(6, width=0.125, image_size=64)
    teacher_det = Detector(6, width=0.125, image_size=64)
    # give the teacher non-trivial BN statistics, as a trained teacher would have
    with torch.no_grad():
        teacher_det.train()
        teacher_det(torch.randn(4, 3, 64, 64))
    teacher = FrozenTeacher(teacher_det)
    before = {k: v.clone() for k, v in teacher_det.state_dict().items()}
    assert not teacher_det.training and all(not p.requires_grad for p in teacher_det.parameters())

    # even an optimizer that (wrongly) also holds the teacher's parameters must not move them
    opt = torch.optim.AdamW(
        list(student.parameters()) + list(teacher_det.parameters()), lr=1e-2, weight_decay=1e-2
    )
    image, depth = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    for layer in ("output", "mid"):
        teacher_det.train()  # a careless .train() must not let BN statistics move
        target = teacher(depth, layer)
        assert not target.requires_grad
        out = student(image, features=("tc1", "res1"))
        emb = {
            "output": out.logits,
            "output_prob": out.probs,
            "mid": out.features["tc1"],
            "early": out.features["res1"],
        }
        emb = emb[layer]
        assert emb.shape == target.shape
        stand_in_reconstruction = out.logits.square().mean()
        loss = stand_in_reconstruction + 0.4 * kd_cosine_loss(emb, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        assert all(p.grad is None for p in teacher_det.parameters())
        assert sum(p.grad.abs().sum().item() for p in student.parameters() if p.grad is not None) > 0
        opt.step()

    after = teacher_det.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key  # weights and BN running stats alike


def test_teacher_target_is_constant_and_deterministic() -> None:
    torch.manual_seed(0)
    teacher = FrozenTeacher(Detector(4, width=0.125, image_size=64))
    depth = torch.randn(2, 3, 64, 64)
    a, b = teacher(depth, "output"), teacher(depth, "output")
    assert torch.equal(a, b) and not a.is_inference()
    student = torch.randn_like(a, requires_grad=True)
    kd_cosine_loss(student, a).backward()  # usable as a saved constant in the student's graph
    assert student.grad is not None and student.grad.abs().sum() > 0
