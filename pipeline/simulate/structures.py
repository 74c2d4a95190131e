"""Clean (noiseless) HU slices from several structure sources, for the training-set generator.

Every source returns float32 HU of shape (K, N, N) whose object lies inside the inscribed circle
(the scan field of view) with air (-1000 HU) around it, so the projector never truncates it:

* ``abdomen``: the anatomy-like phantom of :mod:`pipeline.simulate.phantom`, whole body in view;
* ``zoomed``: the same anatomy rendered 1.5-2.6x finer, a window inside the body, wrapped in a
  soft-tissue/fat outline (small pixels: organs, vessels and bone seen large);
* ``natural``: images shipped with scikit-image (grayscale, random crop/scale/rotation) mapped
  linearly to a random HU range (soft tissue: a 40-400 HU span; wide: lung-to-bone spans) inside a
  body outline -- generic natural textures and edges, a published way to make denoisers generic;
* ``shapes``: textured organs (ellipses), lesions of +-3..80 HU, vessels (smooth random curves,
  0.8-4 px wide, +50..450 HU), bone (+300..1500 HU), gas and lung regions, on a textured
  background inside a body outline.

``shepp_logan_phantom`` is deliberately not used: phantoms of other families are kept for
held-out evaluation. All draws come from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter, zoom

from pipeline.errors import SimulationError
from pipeline.intensity import AIR_HU
from pipeline.simulate.phantom import make_phantom

SOURCES = ("abdomen", "zoomed", "natural", "shapes")

#: scikit-image sample images that ship with the package (no download) and are used here
NATURAL_IMAGES = (
    "camera",
    "astronaut",
    "coins",
    "moon",
    "text",
    "chelsea",
    "coffee",
    "horse",
    "page",
    "rocket",
    "grass",
    "gravel",
    "brick",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "cell",
    "cat",
    "microaneurysms",
)


@functools.lru_cache(maxsize=len(NATURAL_IMAGES))
def natural_image(name: str) -> np.ndarray:
    """A scikit-image sample image as grayscale float32 in [0, 1] (2-D)."""
    import skimage.data

    if name not in NATURAL_IMAGES:
        raise SimulationError(f"unknown natural image {name!r} (available: {NATURAL_IMAGES})")
    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.2125, 0.7154, 0.0721])  # skimage rgb2gray weights
    lo, hi = float(img.min()), float(img.max())
    return ((img - lo) / max(hi - lo, 1e-9)).astype(np.float32)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(n, dtype=np.float32) - (n - 1) / 2.0
    return c[None, :], c[:, None]


def ellipse_cover(
    n: int, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0
) -> np.ndarray:
    """Fractional coverage (N, N) of an ellipse in pixel units, with a one-pixel linear edge."""
    x, y = _grid(n)
    ca, sa = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    d = np.sqrt((u / max(ax, 1e-3)) ** 2 + (v / max(ay, 1e-3)) ** 2)
    return np.clip((1.0 - d) * min(ax, ay) + 0.5, 0.0, 1.0).astype(np.float32)


def texture(n: int, rng: np.random.Generator, corr_px: float) -> np.ndarray:
    """Zero-mean, unit-SD correlated Gaussian field (N, N), correlation ``corr_px`` pixels."""
    f = gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), corr_px, mode="wrap")
    sd = float(f.std())
    return f / sd if sd > 0 else f


def body_outline(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random body: (inner coverage, outer coverage) of an ellipse with a 2-8 px fat ring.

    The outer ellipse stays inside 92 % of the inscribed circle's radius."""
    r = (n - 1) / 2.0
    ax = r * rng.uniform(0.62, 0.92)
    ay = ax * rng.uniform(0.65, 1.0)
    angle = rng.uniform(0.0, np.pi)
    room = 0.92 * r - ax
    cx, cy = rng.uniform(-1, 1, 2) * max(room, 0.0) * 0.7
    ring = rng.uniform(2.0, 8.0)
    outer = ellipse_cover(n, cx, cy, ax, ay, angle)
    inner = ellipse_cover(n, cx, cy, ax - ring, ay - ring, angle)
    return inner, outer


def _wrap(interior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put an (N, N) HU image inside a body outline: fat ring, air outside."""
    n = interior.shape[-1]
    inner, outer = body_outline(n, rng)
    fat = rng.uniform(-120.0, -70.0) + 8.0 * texture(n, rng, 2.0)
    out = AIR_HU + outer * (fat - AIR_HU)
    return (out + inner * (interior - out)).astype(np.float32)


def natural_slice(n: int, rng: np.random.Generator) -> np.ndarray:
    """A scikit-image photo, randomly cropped, scaled, rotated, mapped to HU, in a body (N, N)."""
    img = natural_image(str(rng.choice(NATURAL_IMAGES)))
    h, w = img.shape
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = img[y0 : y0 + side, x0 : x0 + side]
    crop = zoom(crop, n / side, order=1)[:n, :n]
    if crop.shape != (n, n):
        crop = np.pad(crop, ((0, n - crop.shape[0]), (0, n - crop.shape[1])), mode="edge")
    crop = np.rot90(crop, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.3:
        crop = 1.0 - crop
    if rng.random() < 0.7:  # soft tissue: small spans, where denoising matters most
        lo, span = rng.uniform(-150.0, 80.0), rng.uniform(40.0, 400.0)
    else:  # wide: lung/fat to bone
        lo, span = rng.uniform(-900.0, -100.0), rng.uniform(500.0, 1800.0)
    return _wrap((lo + span * crop).astype(np.float32), rng)


def _vessel_distance(n: int, rng: np.random.Generator) -> np.ndarray:
    """Distance (pixels) to a smooth random curve crossing the image (N, N)."""
    steps = 4 * n
    pos = rng.uniform(0.1 * n, 0.9 * n, 2)
    heading = rng.uniform(0, 2 * np.pi)
    turn = rng.uniform(0.005, 0.05)
    mask = np.ones((n, n), dtype=bool)
    for _ in range(steps):
        heading += rng.normal(0.0, turn)
        pos = pos + 0.5 * np.array([np.cos(heading), np.sin(heading)])
        iy, ix = int(pos[1]), int(pos[0])
        if not (0 <= iy < n and 0 <= ix < n):
            break
        mask[iy, ix] = False
    return distance_transform_edt(mask).astype(np.float32)


def shapes_slice(n: int, rng: np.random.Generator) -> np.ndarray:
    """Textured organs, lesions, vessels, bone, gas and lung on a textured background (N, N)."""
    bg = rng.uniform(-110.0, 70.0)
    img = bg + rng.uniform(2.0, 15.0) * texture(n, rng, rng.uniform(0.8, 6.0))
    r = (n - 1) / 2.0

    def place(scale: float) -> tuple[float, float, float, float, float]:
        a = r * scale * rng.uniform(0.4, 1.0)
        b = a * rng.uniform(0.4, 1.0)
        c = rng.uniform(-0.55, 0.55, 2) * r
        return float(c[0]), float(c[1]), a, b, float(rng.uniform(0, np.pi))

    for _ in range(int(rng.integers(2, 8))):  # organs with their own texture
        cov = ellipse_cover(n, *place(0.45))
        hu = rng.uniform(-120.0, 220.0) + rng.uniform(0.0, 20.0) * texture(
            n, rng, rng.uniform(0.8, 5.0)
        )
        img += cov * (hu - img)
    if rng.random() < 0.3:  # a lung region with bright vessel dots
        cov = ellipse_cover(n, *place(0.5))
        lung = rng.uniform(-900.0, -750.0) + 20.0 * texture(n, rng, 1.5)
        img += cov * (lung - img)
        for _ in range(int(rng.integers(5, 30))):
            c = rng.uniform(-0.6, 0.6, 2) * r
            rad = rng.uniform(0.8, 3.0)
            img += cov * ellipse_cover(n, c[0], c[1], rad, rad) * (rng.uniform(-100, 80) - img)
    for _ in range(int(rng.integers(0, 4))):  # bone: solid or cortical ring
        cx, cy, a, b, ang = place(0.18)
        cov = ellipse_cover(n, cx, cy, a, b, ang)
        if rng.random() < 0.5:
            t = rng.uniform(1.5, 5.0)
            cov = cov - ellipse_cover(n, cx, cy, max(a - t, 0.5), max(b - t, 0.5), ang)
        img += cov * (rng.uniform(300.0, 1500.0) - img)
    for _ in range(int(rng.integers(0, 15))):  # vessels
        half = rng.uniform(0.4, 2.0)
        cov = np.clip(half - _vessel_distance(n, rng) + 0.5, 0.0, 1.0)
        img += cov * rng.uniform(50.0, 450.0)
    for _ in range(int(rng.integers(3, 20))):  # lesions, low and high contrast
        c = rng.uniform(-0.6, 0.6, 2) * r
        rad = rng.uniform(1.0, 12.0)
        contrast = rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 80.0)
        cov = ellipse_cover(n, c[0], c[1], rad, rad * rng.uniform(0.7, 1.0), rng.uniform(0, 3))
        img += cov * contrast
    for _ in range(int(rng.integers(0, 3))):  # gas pockets
        c = rng.uniform(-0.5, 0.5, 2) * r
        rad = rng.uniform(2.0, 15.0)
        img += ellipse_cover(n, c[0], c[1], rad, rad * 0.8) * (-950.0 - img)
    return _wrap(img.astype(np.float32), rng)


def abdomen_slices(k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``k`` slices of one random phantom patient, whole body in view; returns (HU, pixel mm)."""
    fov = float(rng.uniform(370.0, 460.0))
    ph = make_phantom(
        k, n, int(rng.integers(0, 2**31)), fov_mm=fov, slice_mm=float(rng.uniform(2.5, 10.0))
    )
    return ph.hu, fov / n


def zoomed_slices(k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``k`` slices: a window inside a finer phantom rendering, in a body outline (HU, pixel mm)."""
    m = int(n * rng.uniform(1.5, 2.6))
    fov = 380.0
    ph = make_phantom(
        k, m, int(rng.integers(0, 2**31)), fov_mm=fov, slice_mm=float(rng.uniform(2.5, 10.0))
    )
    # window centre inside the body (phantom body half-axes ~150 x 108 mm, centre y ~ -8 mm)
    px = fov / m
    cx = (m - 1) / 2.0 + rng.uniform(-90.0, 90.0) / px
    cy = (m - 1) / 2.0 + (-8.0 + rng.uniform(-55.0, 55.0)) / px
    x0 = int(np.clip(cx - n / 2, 0, m - n))
    y0 = int(np.clip(cy - n / 2, 0, m - n))
    win = ph.hu[:, y0 : y0 + n, x0 : x0 + n]
    out = np.stack([_wrap(s, np.random.default_rng(rng.integers(0, 2**63))) for s in win])
    return out, px


def render(source: str, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``k`` clean slices (K, N, N) HU of ``source`` and their pixel size (mm).

    ``natural`` and ``shapes`` have no physical scale: their pixel size is drawn from 0.3-1.0 mm.
    Whatever lies outside the scan field of view (the table's ends) is set to air, as the
    projector never sees it.
    """
    if source == "abdomen":
        hu, px = abdomen_slices(k, n, rng)
    elif source == "zoomed":
        hu, px = zoomed_slices(k, n, rng)
    elif source in ("natural", "shapes"):
        fn = natural_slice if source == "natural" else shapes_slice
        hu, px = np.stack([fn(n, rng) for _ in range(k)]), float(rng.uniform(0.3, 1.0))
    else:
        raise SimulationError(f"unknown structure source {source!r} (available: {SOURCES})")
    x, y = _grid(n)
    hu[:, x**2 + y**2 > (n / 2.0) ** 2] = AIR_HU
    return hu.astype(np.float32), px
