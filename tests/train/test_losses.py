"""Losses: CenterNet targets and focal loss checked by hand, SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edge_isp.contract.boxes import box_iou
from edge_isp.errors import InvalidInputError
from edge_isp.train import losses


class TestGaussianRadius:
    def test_square_box_by_hand(self):
        # For a square of side s the shrunk-box case is smallest: (s - 2r)^2 / s^2 = t,
        # so r = s (1 - sqrt(t)) / 2.
        assert losses.gaussian_radius(10.0, 10.0, 0.7) == pytest.approx(10 * (1 - math.sqrt(0.7)) / 2)

    @pytest.mark.parametrize(("w", "h"), [(10.0, 10.0), (4.0, 30.0), (50.0, 7.0)])
    def test_every_case_keeps_the_overlap(self, w, h):
        r = losses.gaussian_radius(w, h, 0.7)
        box = np.array([[0.0, 0.0, w, h]])
        moved = np.array([
            [r, r, w + r, h + r],  # both corners shifted the same way
            [r, r, w - r, h - r],  # both inwards
            [-r, -r, w + r, h + r],  # both outwards
        ])  # fmt: skip
        iou = box_iou(box, moved)[0]
        assert np.all(iou >= 0.7 - 1e-9)
        assert np.min(iou) == pytest.approx(0.7)  # the radius is the largest such

    def test_bad_input(self):
        with pytest.raises(InvalidInputError, match="min_overlap"):
            losses.gaussian_radius(0.0, 3.0)


class TestDetectionTargets:
    def test_small_box_hand_checked(self):
        boxes = torch.tensor([[[10.0, 6.0, 22.0, 18.0], [0, 0, 0, 0]]])
        labels = torch.tensor([[1, -1]])
        t = losses.detection_targets(boxes, labels, num_classes=2, output_hw=(8, 8))
        # Centre (16, 12) px -> (4.0, 3.0) cells; 3x3-cell box -> radius int(0.4) = 0: one cell.
        assert t.heatmap[0, 1, 3, 4] == 1.0
        assert t.heatmap.sum() == 1.0 and t.heatmap[0, 0].sum() == 0
        assert t.index.tolist() == [[3 * 8 + 4, 0]]
        assert t.size[0, 0].tolist() == [12.0, 12.0]
        assert t.offset[0, 0].tolist() == [0.0, 0.0]
        assert t.mask.tolist() == [[1.0, 0.0]]

    def test_gaussian_of_a_large_box(self):
        # 64x64 px = 16x16 cells: radius int(16 * (1 - sqrt(.7)) / 2) = 1, sigma = 3 / 6.
        boxes = torch.tensor([[[2.0, 2.0, 66.0, 66.0]]])
        t = losses.detection_targets(boxes, torch.tensor([[0]]), num_classes=1, output_hw=(20, 20))
        heat = t.heatmap[0, 0]
        cy, cx = 8, 8  # centre 34 px / 4 = 8.5 cells
        assert t.offset[0, 0].tolist() == [0.5, 0.5]
        assert heat[cy, cx] == 1.0
        assert heat[cy, cx + 1].item() == pytest.approx(math.exp(-2.0), rel=1e-5)
        assert heat[cy + 1, cx + 1].item() == pytest.approx(math.exp(-4.0), rel=1e-5)
        assert heat[cy, cx + 2] == 0.0  # cut at the radius
        assert int((heat > 0).sum()) == 9

    def test_overlapping_peaks_take_the_maximum(self):
        boxes = torch.tensor([[[0.0, 0.0, 64.0, 64.0], [4.0, 0.0, 68.0, 64.0]]])
        t = losses.detection_targets(boxes, torch.tensor([[0, 0]]), num_classes=1, output_hw=(20, 20))
        assert t.heatmap[0, 0, 8, 8] == 1.0 and t.heatmap[0, 0, 8, 9] == 1.0
        assert t.heatmap.max() == 1.0

    def test_bad_labels(self):
        with pytest.raises(InvalidInputError, match="num_classes"):
            losses.detection_targets(torch.zeros(1, 1, 4), torch.tensor([[3]]), 2, (4, 4))


class TestFocalLoss:
    def test_hand_checked(self):
        logits = torch.zeros(1, 1, 1, 3)
        target = torch.tensor([[[[1.0, 0.5, 0.0]]]])
        # p = 0.5 everywhere. Positive: -log(.5) * .5^2; negatives: -log(.5) * .5^2 * (1 - t)^4.
        expected = math.log(2) * 0.25 * (1 + 0.5**4 + 1.0)
        assert losses.focal_loss(logits, target).item() == pytest.approx(expected)

    def test_divides_by_number_of_peaks_and_stays_finite(self):
        target = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
        confident = torch.tensor([[[[40.0, 40.0, -40.0, -40.0]]]])
        assert losses.focal_loss(confident, target).item() == pytest.approx(0.0, abs=1e-12)
        wrong = torch.tensor([[[[-200.0, -200.0, 200.0, 200.0]]]], requires_grad=True)
        value = losses.focal_loss(wrong, target)
        value.backward()
        assert math.isfinite(value.item()) and torch.isfinite(wrong.grad).all()
        assert value.item() == pytest.approx(400.0)  # 2 peaks x 200 + 2 negatives x 200, over 2

    def test_centernet_loss_regresses_only_real_boxes(self):
        boxes = torch.tensor([[[8.0, 8.0, 24.0, 24.0], [0, 0, 0, 0]]])
        t = losses.detection_targets(boxes, torch.tensor([[0, -1]]), 1, (8, 8))
        maps = {
            "heatmap": torch.full((1, 1, 8, 8), -5.0),
            "size": torch.full((1, 2, 8, 8), 10.0),
            "offset": torch.full((1, 2, 8, 8), 0.25),
        }
        total, parts = losses.centernet_loss(maps, t, 1.0, 0.1, 1.0)
        assert parts["size"].item() == pytest.approx(6.0)  # |10 - 16| per coordinate
        assert parts["offset"].item() == pytest.approx(0.25)
        assert total.item() == pytest.approx(parts["heatmap"].item() + 0.6 + 0.25)


class TestSsim:
    def test_matches_scikit_image(self):
        from skimage.metrics import structural_similarity

        rng = np.random.default_rng(0)
        x = rng.random((3, 24, 20))
        y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
        ours = losses.ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None]).item()
        ref = structural_similarity(
            x, y, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert ours == pytest.approx(ref, abs=1e-6)

    def test_identity_and_gradient(self):
        x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
        assert torch.allclose(losses.ssim(x, x), torch.ones(2, dtype=torch.float64))
        a = torch.rand(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
        b = torch.rand(1, 1, 12, 12, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda t: losses.ssim(t, b), (a,))

    def test_small_images_shrink_the_window(self):
        x = torch.rand(1, 3, 6, 8)
        assert losses.ssim(x, x).item() == pytest.approx(1.0)

    def test_reconstruction_loss_parts(self):
        x, y = torch.zeros(1, 3, 16, 16), torch.full((1, 3, 16, 16), 0.5)
        total, parts = losses.reconstruction_loss(x, y, 1.0, 0.5)
        assert parts["l1"].item() == pytest.approx(0.5)
        assert total.item() == pytest.approx(0.5 + 0.5 * (1 - parts["ssim"].item()))
        with pytest.raises(InvalidInputError, match="equal shapes"):
            losses.reconstruction_loss(x, y[:, :, :8], 1.0, 0.0)

    def test_log_mse_is_minus_the_mean_psnr_and_weighs_each_image_by_its_own_error(self):
        target = torch.full((2, 3, 8, 8), 0.5)
        # Image 0 off by 0.1 everywhere (20 dB), image 1 off by 0.01 (40 dB).
        prediction = target + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
        total, parts = losses.reconstruction_loss(prediction, target, 0.0, 0.0, 1.0)
        eps = losses.LOG_MSE_EPS
        assert total.item() == pytest.approx((math.log(0.01 + eps) + math.log(1e-4 + eps)) / 2, rel=1e-5)
        assert parts["psnr"].item() == pytest.approx(-10 * math.log10(math.exp(total.item())), rel=1e-5)
        # Doubling either image's error costs the same, ln 4 / 2 (before the floor), while
        # L1 charges the large error ten times more.
        for i in (0, 1):
            worse = prediction.clone()
            worse[i] = target[i] + 2 * (prediction[i] - target[i])
            step = losses.reconstruction_loss(worse, target, 0.0, 0.0, 1.0)[0] - total
            assert step.item() == pytest.approx(math.log(4) / 2, rel=0.1)
