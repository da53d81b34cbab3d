"""What every augmentation draws, measured on the Keras layers the registry builds.

A batch of copies of one small test image goes through the built layer in training mode; the drawn quantity is
recovered from each output image (a contrast factor from the deviations around the mean, an angle or a shift from
the positions of marker blobs, ...) and must (a) lie in the range the registry states (`AugmentationSpec.drawn`),
(b) reach both ends of it, and the layer must (c) return its input unchanged at inference.
"""

from __future__ import annotations

import numpy as np
import pytest

from augsweep import augment
from augsweep.augment.policies import TRIVIAL_OPS

N = 384  # copies per batch: a uniform draw misses the outer 10% of its range with probability 0.9**384
SIZE = 48
SEED = 11
ENDS = 0.10  # (b): the smallest and largest values seen lie within this fraction of the range's width of its ends

# Marker blobs, one per channel, at (x, y): the geometric measurements fit the map that moved them.
NEAR = np.array([(18.5, 18.5), (28.5, 18.5), (18.5, 28.5), (28.5, 28.5), (23.5, 21.0)])
WIDE = np.array([(10.5, 10.5), (36.5, 10.5), (10.5, 36.5), (36.5, 36.5), (23.5, 18.0)])

# Each registered augmentation, every variant, at a factor its markers stay measurable at.
CASES = [
    ("flip", {"mode": "horizontal"}), ("flip", {"mode": "vertical"}), ("flip", {"mode": "both"}),
    ("contrast", {"factor": 0.4}), ("brightness", {"factor": 0.3}), ("rotation", {"factor": 0.5}),
    ("warp", {"kind": "translation", "factor": 0.3}), ("warp", {"kind": "zoom", "factor": 0.3}),
    ("warp", {"kind": "shear", "factor": 0.3}), ("warp", {"kind": "perspective", "factor": 0.3}),
    ("crop", {"factor": 0.3}),
]
ELASTIC = {"kind": "elastic", "factor": 0.5}  # measured per batch: test_elastic_magnitude_per_batch
RANDAUGMENT = {"factor": 0.2}
# RandAugment's sub-layers that draw the quantities the registry states for it.
RANDAUGMENT_LAYERS = {"contrast factor": "random_contrast", "brightness offset": "random_brightness",
                      "angle": "random_rotation", "shift right": "random_translation",
                      "shift down": "random_translation", "shear x": "random_shear", "shear y": "random_shear"}


# ----------------------------------------------------------------------------- test images


def gray_pattern(n: int = N, channels: int = 3) -> np.ndarray:
    """Mid-gray with a fixed random texture of +-0.1: no flip or photometric draw here pushes it out of [0, 1]
    (where Keras would clip), and no mirror image of it equals it."""
    rng = np.random.default_rng(0)
    one = 0.5 + rng.uniform(-0.1, 0.1, (SIZE, SIZE, channels))
    return np.repeat(one[None], n, axis=0).astype(np.float32)


def markers(points: np.ndarray, n: int = N, sigma: float = 1.0) -> np.ndarray:
    """One Gaussian blob per channel, centred at `points` (x, y)."""
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    blobs = [np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points]
    return np.repeat(np.stack(blobs, axis=-1)[None], n, axis=0).astype(np.float32)


def run(layer, images, training=True) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(layer(images, training=training))


# ----------------------------------------------------------------------------- recovering what was drawn


def centroids(out: np.ndarray, r: int = 4) -> np.ndarray:
    """(n, channels, 2) centre (x, y) of each channel's blob: the weighted mean of the (2r+1)^2 window around its
    brightest pixel (blind to the reflected copies that fill modes leave further out)."""
    n, h, w, k = out.shape
    padded = np.pad(np.clip(out, 0, None), ((0, 0), (r, r), (r, r), (0, 0)))
    peak = out.reshape(n, h * w, k).argmax(axis=1)  # (n, k)
    py, px = np.divmod(peak, w)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    rows = py[..., None, None] + dy + r  # (n, k, 2r+1, 2r+1), in padded coordinates
    cols = px[..., None, None] + dx + r
    win = padded[np.arange(n)[:, None, None, None], rows, cols, np.arange(k)[None, :, None, None]]
    mass = win.sum(axis=(-1, -2))
    return np.stack([(win * (cols - r)).sum(axis=(-1, -2)) / mass, (win * (rows - r)).sum(axis=(-1, -2)) / mass],
                    axis=-1)


def affine(out: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, t) per image, least squares: each marker moved from p to A p + t."""
    found = centroids(out)
    design = np.c_[points, np.ones(len(points))]
    coef = np.einsum("ij,njk->nik", np.linalg.pinv(design), found)  # (n, 3, 2)
    A, t = np.transpose(coef[:, :2, :], (0, 2, 1)), coef[:, 2, :]
    worst = np.abs(np.einsum("nij,kj->nki", A, points) + t[:, None] - found).max()
    assert worst < 0.2, f"the markers did not move by one affine map (off by {worst:.2f} px)"
    return A, t


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y, -u], [0, 0, 0, x, y, 1, -v * x, -v * y, -v]]
    h = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 3)
    return h / h[2, 2]


def corner_shifts(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each image corner went, as a fraction of the side: (the coordinates Keras moves, those it keeps)."""
    corners = np.array([(0, 0), (SIZE - 1, 0), (0, SIZE - 1), (SIZE - 1, SIZE - 1)], float)
    moved = []
    for found in centroids(out):
        q = np.c_[corners, np.ones(4)] @ homography(WIDE, found).T
        moved.append(q[:, :2] / q[:, 2:] - corners)
    moved = np.array(moved) / (SIZE - 1)  # (n, 4, 2)
    free = corners > 0  # Keras moves a corner's coordinate by itself times a uniform draw
    return moved[:, free], moved[:, ~free]


def contrast_factor(inputs, out):
    dev_in = inputs - inputs.mean(axis=(1, 2), keepdims=True)
    dev_out = out - out.mean(axis=(1, 2), keepdims=True)
    return (dev_out * dev_in).sum(axis=(1, 2, 3)) / (dev_in**2).sum(axis=(1, 2, 3))


def mirrored(inputs, out):
    """(left-right, up-down) per image; every output must be the input or one of its mirror images."""
    outcomes = {(lr, ud): np.all(out == (inputs[:, ::-1 if ud else 1, ::-1 if lr else 1]), axis=(1, 2, 3))
                for lr in (False, True) for ud in (False, True)}
    assert np.all(sum(outcomes.values()) == 1), "an output that is no mirror image of the input"
    return (outcomes[True, False] | outcomes[True, True]).astype(float), \
        (outcomes[False, True] | outcomes[True, True]).astype(float)


def measure(layer, quantity: str) -> np.ndarray:
    """The `quantity` (a `Drawn.quantity`) that `layer` drew for each of N images."""
    if quantity in ("contrast factor", "brightness offset", "mirrored left-right", "mirrored up-down"):
        inputs = gray_pattern()
        out = run(layer, inputs)
        if quantity == "contrast factor":
            return contrast_factor(inputs, out)
        if quantity == "brightness offset":
            return (out - inputs).mean(axis=(1, 2, 3))
        return mirrored(inputs, out)[quantity == "mirrored up-down"]
    if quantity == "distorted":
        inputs = markers(WIDE)
        return np.any(run(layer, inputs) != inputs, axis=(1, 2, 3)).astype(float)
    if quantity == "corner shift":
        free, kept = corner_shifts(run(layer, markers(WIDE)))
        assert np.abs(kept).max() < 0.01, "Keras keeps the top-left corner and the zero coordinates of the others"
        return free.ravel()
    A, t = affine(run(layer, markers(NEAR)), NEAR)
    inverse = np.linalg.inv(A)  # output pixel -> the input point it shows (how Keras writes its transforms)
    centre = np.array([(SIZE - 1) / 2] * 2)
    shift = (np.einsum("nij,j->ni", A, centre) + t - centre) / SIZE
    side = 1 / A[:, 0, 0]
    recover = {
        "angle": lambda: -np.arctan2(A[:, 1, 0], A[:, 0, 0]) / (2 * np.pi),  # counter-clockwise on screen, turns
        "shift right": lambda: shift[:, 0],
        "shift down": lambda: shift[:, 1],
        "zoom": lambda: inverse[:, 0, 0],
        "shear x": lambda: inverse[:, 0, 1],
        "shear y": lambda: inverse[:, 1, 0],
        "window side": lambda: side,
        # x_out = (x_in + 0.5 - left) / side - 0.5: the resize of a window whose left edge is at `left`.
        "window left": lambda: (0.5 - (t[:, 0] + 0.5) * side) / SIZE,
        "window top": lambda: (0.5 - (t[:, 1] + 0.5) * side) / SIZE,
    }
    if quantity == "zoom":
        np.testing.assert_allclose(inverse[:, 0, 0], inverse[:, 1, 1], atol=0.01)  # one zoom for both axes
    return recover[quantity]()


TOLERANCE = {"contrast factor": 0.01, "brightness offset": 0.002, "angle": 0.003, "shift right": 0.005,
             "shift down": 0.005, "zoom": 0.01, "shear x": 0.01, "shear y": 0.01, "window side": 0.01,
             "window left": 0.005, "window top": 0.005, "corner shift": 0.02, "elastic magnitude": 0.02}


def check_range(values: np.ndarray, drawn, factor: float, label: str) -> tuple[float, float]:
    """(a) every value inside the stated range, (b) both ends reached; returns the observed (min, max)."""
    low, high = drawn.bounds(factor)
    seen = (float(values.min()), float(values.max()))
    if drawn.chance:
        assert abs(values.mean() - low) < 0.07, f"{label}: {drawn.quantity} in {values.mean():.3f} of the " \
                                                f"images, stated probability {low:g}"
        return float(values.mean()), float(values.mean())
    tol = TOLERANCE[drawn.quantity]
    assert low - tol <= seen[0] and seen[1] <= high + tol, \
        f"{label}: {drawn.quantity} seen in [{seen[0]:.4f}, {seen[1]:.4f}], stated [{low:.4f}, {high:.4f}]"
    reach = max(ENDS * (high - low), tol)
    assert seen[0] <= low + reach and seen[1] >= high - reach, \
        f"{label}: {drawn.quantity} seen in [{seen[0]:.4f}, {seen[1]:.4f}]: the stated [{low:.4f}, {high:.4f}] " \
        f"is not reached at both ends"
    return seen


def check_identity_at_inference(layer, label: str):
    for images in (gray_pattern(8), markers(NEAR, 8)):
        assert np.array_equal(run(layer, images, training=False), images), f"{label} changes images at inference"


# ----------------------------------------------------------------------------- the tests


def _id(case):
    name, params = case
    return "-".join([name, *map(str, params.values())])


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_each_augmentation_draws_its_stated_range(case):
    name, params = case
    spec = augment.REGISTRY[name]
    for drawn in spec.drawn(params):
        (layer,) = augment.build_layers({name: params}, SEED)  # built afresh for each quantity (its own image)
        check_range(measure(layer, drawn.quantity), drawn, params.get("factor", 0.0), _id(case))
    check_identity_at_inference(layer, _id(case))


def test_elastic_magnitude_per_batch():
    """Keras draws the magnitude d once per batch and moves each pixel by alpha * sigma * (a normal draw), with
    alpha = 0.1 d * 32 and sigma = 0.05 d * 32 on 32x32 images (no blur while sigma < 1, i.e. d < 0.625): the
    displacement's root mean square over a batch gives d back."""
    (layer,) = augment.build_layers({"warp": ELASTIC}, SEED)
    distorted, magnitude = augment.REGISTRY["warp"].drawn(ELASTIC)
    assert magnitude.per == "batch"
    side = 32
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    slope = 0.5 / (side - 1)
    ramps = np.repeat(np.stack([0.25 + xx * slope, 0.25 + yy * slope], axis=-1)[None], 2, axis=0)
    changed, found = [], []
    for _ in range(40):
        out = run(layer, ramps)
        changed += list(np.any(out != ramps, axis=(1, 2, 3)))
        moved = (out - ramps)[:, 6:-6, 6:-6] / slope  # in pixels, away from the borders' reflections
        rms = np.sqrt((moved**2).mean())
        found.append(np.sqrt(rms / (0.1 * side * 0.05 * side)))
    check_range(np.array(changed, float), distorted, ELASTIC["factor"], "warp-elastic")
    check_range(np.array(found), magnitude, ELASTIC["factor"], "warp-elastic")
    check_identity_at_inference(layer, "warp-elastic")


def test_flip_both_mirrors_each_axis_independently():
    """All four outcomes (as is, left-right, up-down, both), each with the product of the stated probabilities."""
    params = {"mode": "both"}
    (layer,) = augment.build_layers({"flip": params}, SEED)
    p_lr, p_ud = (d.bounds()[0] for d in augment.REGISTRY["flip"].drawn(params))
    inputs = gray_pattern()
    lr, ud = mirrored(inputs, run(layer, inputs))
    for a, b, expected in ((1, 1, p_lr * p_ud), (1, 0, p_lr * (1 - p_ud)), (0, 1, (1 - p_lr) * p_ud),
                           (0, 0, (1 - p_lr) * (1 - p_ud))):
        seen = np.mean((lr == a) & (ud == b))
        assert abs(seen - expected) < 0.06, f"left-right {a}, up-down {b}: {seen:.3f} of the images, " \
                                            f"expected {expected:.3f}"


TRIVIAL = [op for op in TRIVIAL_OPS if op[1] is not None]


@pytest.mark.parametrize("op", TRIVIAL, ids=[op[0] for op in TRIVIAL])
def test_trivialaugment_operations_draw_their_entries_ranges(op):
    """Each operation's layer inside the built TrivialAugment draws what its registry entry states at its factor."""
    name, entry, params = op
    for drawn in augment.REGISTRY[entry].drawn(params):
        (policy,) = augment.build_layers({"trivialaugment": {}}, SEED)
        layer = policy.op_layers[policy.op_names.index(name) - 1]
        check_range(measure(layer, drawn.quantity), drawn, params.get("factor", 0.0), f"trivialaugment-{name}")


def test_trivialaugment_picks_one_operation_per_image_and_passes_through_at_inference():
    """An image comes out exactly as it went in only from the identity, or from an operation whose every event
    (flip's mirroring, with its probability) did not happen; nothing continuous lands exactly on the input."""
    (policy,) = augment.build_layers({"trivialaugment": {}}, SEED)
    (drawn,) = augment.REGISTRY["trivialaugment"].drawn({})
    each = drawn.bounds()[0]
    expected = 0.0
    for _, entry, params in TRIVIAL_OPS:
        events = [] if entry is None else augment.REGISTRY[entry].drawn(params)
        if all(d.chance for d in events):
            expected += each * np.prod([1 - d.bounds()[0] for d in events])
    inputs = gray_pattern()  # no mirror image of it equals it
    untouched = np.all(run(policy, inputs) == inputs, axis=(1, 2, 3)).mean()
    assert abs(untouched - expected) < 0.05, f"{untouched:.3f} of the images untouched, expected {expected:.3f}"
    check_identity_at_inference(policy, "trivialaugment")


def test_randaugment_draws_what_is_stated_for_it():
    """Keras's RandAugment, as built: its operations draw one-sided ranges (factor f becomes (0, f))."""
    for drawn in augment.REGISTRY["randaugment"].drawn(RANDAUGMENT):
        (policy,) = augment.build_layers({"randaugment": RANDAUGMENT}, SEED)
        policy.build((None, SIZE, SIZE, 5))
        layer = getattr(policy, RANDAUGMENT_LAYERS[drawn.quantity])
        check_range(measure(layer, drawn.quantity), drawn, RANDAUGMENT["factor"], "randaugment")
    check_identity_at_inference(policy, "randaugment")


def test_every_variant_and_quantity_is_measured():
    covered = {(name, params.get(augment.REGISTRY[name].choice, "")) for name, params in CASES}
    covered |= {("warp", "elastic"), ("randaugment", ""), ("trivialaugment", "")}
    stated = {(name, key) for name, spec in augment.REGISTRY.items() for key in spec.ranges}
    assert stated == covered, "a registry entry (or variant) whose ranges no test measures, or one without ranges"
