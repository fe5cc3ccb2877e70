"""Batches: collation with variable box counts, flips, resizing, raw simulation at light levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_isp.errors import InvalidInputError
from edge_isp.sensor.profile import SensorProfile
from edge_isp.train.batches import (
    RawBatcher,
    TaskDataset,
    collate_detection,
    conventional_isp_batch,
    light_to_electrons,
    random_hflip,
)


def test_collate_detection_pads_with_minus_one():
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    items = [
        (image, torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]]), torch.tensor([1, 0])),
        (image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)),
    ]
    images, boxes, labels = collate_detection(items)
    assert images.shape == (2, 3, 8, 8) and boxes.shape == (2, 2, 4)
    assert labels.tolist() == [[1, 0], [-1, -1]]
    assert boxes[0, 1].tolist() == [1, 1, 5, 5]
    with pytest.raises(InvalidInputError, match=r"data\.size"):
        collate_detection([items[0], (torch.zeros(3, 8, 6, dtype=torch.uint8), *items[1][1:])])


def test_flip_moves_boxes_with_the_pixels():
    images = torch.zeros(8, 1, 4, 10)
    images[:, :, 1:3, 1:4] = 1.0  # an object at x in [1, 4)
    boxes = torch.tensor([[[1.0, 1.0, 4.0, 3.0], [0, 0, 0, 0]]]).repeat(8, 1, 1)
    labels = torch.tensor([[0, -1]]).repeat(8, 1)
    flipped, new_boxes = random_hflip(images, boxes, labels, generator=torch.Generator().manual_seed(3))
    did = flipped[:, 0, 1, 8] == 1.0
    assert 0 < int(did.sum()) < 8  # some flipped, some not
    for i in range(8):
        x0, _, x1, _ = new_boxes[i, 0].tolist()
        assert (x0, x1) == ((6.0, 9.0) if did[i] else (1.0, 4.0))
        assert torch.all(flipped[i, 0, 1, int(x0) : int(x1)] == 1.0)
    assert torch.all(new_boxes[:, 1] == 0)  # padding untouched


def test_task_dataset_resizes_boxes_and_spreads_the_limit():
    class Base:
        class_names = ("a",)

        def __len__(self):
            return 10

        def __getitem__(self, i):
            return np.full((20, 40, 3), i, np.uint8), np.array([[4.0, 2.0, 20.0, 10.0]]), np.array([0])

    ds = TaskDataset(Base(), "detection", size=(20, 10), limit=3)
    assert len(ds) == 3
    image, boxes, labels = ds[2]
    assert labels.tolist() == [0]
    assert image.shape == (3, 10, 20) and int(image[0, 0, 0]) == 9  # items 0, 4 (or 5), 9
    assert boxes.tolist() == [[2.0, 1.0, 10.0, 5.0]]
    with pytest.raises(IndexError):
        ds[3]


def test_light_units():
    profile = SensorProfile.load("nexus6p-rear")
    assert light_to_electrons(profile, [3.0], "lux")[0] == pytest.approx(3.0 * profile.electrons_at_white(1.0))
    assert light_to_electrons(profile, [8.0], "electrons") == [8.0]
    with pytest.raises(InvalidInputError, match="unit"):
        light_to_electrons(profile, [1.0], "nits")


def test_raw_batcher_samples_levels_in_range_and_noise_follows_light():
    profile = SensorProfile.load("nexus6p-rear")
    batcher = RawBatcher(profile, (5.0, 500.0))
    clean = torch.full((64, 3, 8, 8), 0.5)
    sim = batcher(clean, torch.Generator().manual_seed(0))
    levels = sim.electrons_at_white
    assert sim.packed.shape == (64, 4, 4, 4) and sim.noise.shape == (64, 2)
    assert torch.all((levels >= 5.0) & (levels <= 500.0))
    # Log-uniform: about half the draws fall below the geometric mean (50 e-).
    assert 16 < int((levels < 50.0).sum()) < 48
    # The Poisson parameter a = 1 / electrons for this profile.
    assert torch.allclose(sim.noise[:, 0], 1 / levels, rtol=1e-4)
    fixed = batcher(clean, torch.Generator().manual_seed(0), torch.full((64,), 10.0))
    assert torch.allclose(fixed.electrons_at_white, torch.full((64,), 10.0))
    with pytest.raises(InvalidInputError, match="low <= high"):
        RawBatcher(profile, (10.0, 1.0))


def test_raw_batcher_read_noise_range_draws_a_factor_per_training_image():
    profile = SensorProfile.load("nexus6p-rear")
    clean = torch.full((256, 3, 8, 8), 0.5)
    plain = RawBatcher(profile, (5.0, 500.0))(clean, torch.Generator().manual_seed(0))
    jittered = RawBatcher(profile, (5.0, 500.0), read_noise_range=(0.25, 4.0))
    sim = jittered(clean, torch.Generator().manual_seed(0))
    # The levels come first from the generator, so they are the same draws as without jitter.
    assert torch.equal(sim.electrons_at_white, plain.electrons_at_white)
    factor = sim.noise[:, 1] / plain.noise[:, 1]
    assert torch.all((factor >= 0.25 - 1e-5) & (factor <= 4.0 + 1e-5))
    # Log-uniform on [1/4, 4]: about half the factors below 1; a unchanged.
    assert 96 < int((factor < 1).sum()) < 160
    assert torch.allclose(sim.noise[:, 0], plain.noise[:, 0])
    # Given levels (validation, evaluation) simulate the profile itself.
    fixed = jittered(clean, torch.Generator().manual_seed(0), torch.full((256,), 10.0))
    assert torch.allclose(fixed.noise[:, 1], fixed.noise[0, 1].expand(256))
    with pytest.raises(InvalidInputError, match="read noise range"):
        RawBatcher(profile, (5.0, 500.0), read_noise_range=(2.0, 1.0))


def test_conventional_isp_batch_renders_the_raw():
    pytest.importorskip("edge_isp.isp.pipeline")
    profile = SensorProfile.load("nexus6p-rear")
    ramp = torch.linspace(0.1, 0.9, 16)
    clean = torch.stack([ramp.view(1, 16).expand(16, 16), ramp.view(16, 1).expand(16, 16), ramp.flip(0).view(1, 16)
                         .expand(16, 16)])[None].repeat(2, 1, 1, 1)  # fmt: skip
    sim = RawBatcher(profile, (2000.0, 2000.0))(clean, torch.Generator().manual_seed(0))
    rgb = conventional_isp_batch(sim, profile, "bilinear", "none", workers=2)
    assert rgb.shape == clean.shape and rgb.min() >= 0 and rgb.max() <= 1
    # Smooth colour ramps at 2000 e- come back close to the clean image.
    assert float((rgb - clean).abs().mean()) < 0.03
    # At 10 e- the noise dominates, and the ISP's denoiser (given the noise level) helps.
    dark = RawBatcher(profile, (10.0, 10.0))(clean, torch.Generator().manual_seed(0))
    errors = [
        float((conventional_isp_batch(dark, profile, "bilinear", d) - clean).abs().mean()) for d in ("none", "nlm")
    ]
    assert errors[1] < 0.8 * errors[0]
