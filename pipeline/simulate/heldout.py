"""The held-out benchmark set. NEVER FOR TRAINING, VALIDATION OR MODEL SELECTION.

Everything here exists only to *test* denoisers on data no model has seen
(``benchmarks/bench_heldout.py``); ``tests/simulate/test_simulate_heldout.py`` fails if any
training, data or other simulation module references this module or the real test slices.

Two parts:

(a) **Phantoms of a family no training generator uses**: a randomly perturbed Shepp-Logan layout
    (the 10 ellipses of Shepp & Logan 1974 / Toft 1996, each centre, axis, angle and HU drawn per
    seed, the whole object scaled to a body-sized, body-shaped outline), outer shell fat-like or
    bone-like, the two tilted ellipses fluid or lung, a Rolland-Barrett *lumpy background*
    texture (random Gaussian lumps), random low/high-contrast disc lesions and bright
    calcification dots; rendered with 4x4 supersampling (box anti-aliasing). Reconstructed at
    256^2, 1.48 mm with a kernel and view count that training does not use: the **cosine** FBP
    filter and **540 views** (the project's default geometry has ~pi/2 N = 404 views at 256^2;
    training uses ramp / Shepp-Logan / Hann). Quarter dose by the project's sinogram-domain
    simulator (:func:`pipeline.simulate.lowdose.simulate_pair`); the reference is the noisy full
    dose of the same photons.
(b) **Real CT slices shipped with pydicom / pydicom-data** at their native size (512^2, head,
    neck and abdomen, 0.29-0.86 mm pixels), quarter dose by noise insertion through the
    ``ldct simulate`` path (:func:`pipeline.simulate.from_volume.simulate_low_dose`, default
    settings); the reference is the original slice. These slices are the held-out real anatomy
    for everyone: never used for training or model selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from pipeline.errors import SimulationError
from pipeline.intensity import AIR_HU
from pipeline.simulate.lowdose import SimulationSettings, simulate_pair

#: Reconstruction of part (a): a filter and a view count that training does not use.
HELDOUT_FILTER = "cosine"
HELDOUT_VIEWS = 540
HELDOUT_SIZE = 256
HELDOUT_PIXEL_MM = 1.48
#: Seeds of part (a) start here (a reader sees at once that they are not training seeds).
HELDOUT_SEED_BASE = 910_000
#: Part (b): distinct real CT images in pydicom's test files and pydicom-data (one file per
#: image: 693_J2KI/J2KR/UNCI hold the same slice as 693_UNCR). bad_sequence.dcm is a zoomed
#: (cropped field of view) neck reconstruction: simulated with allow_cropped, which records it.
REAL_FILES: tuple[str, ...] = (
    "693_UNCR.dcm",  # head, 0.48 mm
    "J2K_pixelrep_mismatch.dcm",  # head, 0.43 mm
    "bad_sequence.dcm",  # neck, 0.29 mm (cropped FOV)
    "explicit_VR-UN.dcm",  # abdomen (pancreas), 0.86 mm
)

#: Shepp-Logan ellipses (Toft's modified table): centre (x0, y0), semi-axes (a, b), angle (deg),
#: in units of the object half-size; y points up in the table (down in the image).
_SHEPP_LOGAN = (
    (0.0, 0.0, 0.69, 0.92, 0.0),
    (0.0, -0.0184, 0.6624, 0.874, 0.0),
    (0.22, 0.0, 0.11, 0.31, -18.0),
    (-0.22, 0.0, 0.16, 0.41, 18.0),
    (0.0, 0.35, 0.21, 0.25, 0.0),
    (0.0, 0.1, 0.046, 0.046, 0.0),
    (0.0, -0.1, 0.046, 0.046, 0.0),
    (-0.08, -0.605, 0.046, 0.023, 0.0),
    (0.0, -0.606, 0.023, 0.023, 0.0),
    (0.06, -0.605, 0.023, 0.046, 0.0),
)
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class HeldoutSlice:
    """One held-out pair: quarter-dose input and full-dose reference (HU, (H, W) float32)."""

    name: str
    part: str  # "phantom" | "real"
    low_hu: np.ndarray
    full_hu: np.ndarray
    pixel_mm: float
    info: dict[str, Any] = field(default_factory=dict)


def _grid(n: int, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Supersampled pixel-centre coordinates (mm), x to the right, y downwards."""
    m = n * _SUPERSAMPLE
    c = (np.arange(m) - (m - 1) / 2.0) * (pixel_mm / _SUPERSAMPLE)
    return c[None, :], c[:, None]


def _downsample(img: np.ndarray, n: int) -> np.ndarray:
    s = _SUPERSAMPLE
    return img.reshape(n, s, n, s).mean(axis=(1, 3))


def _inside(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float, angle_rad: float
) -> np.ndarray:
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    dx, dy = x - cx, y - cy
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    return np.asarray((u / a) ** 2 + (v / b) ** 2 <= 1.0)


def heldout_phantom(
    seed: int, size: int = HELDOUT_SIZE, pixel_mm: float = HELDOUT_PIXEL_MM
) -> np.ndarray:
    """Clean HU slice ``(size, size)`` float32 of held-out phantom ``seed`` (part (a) family).

    Deterministic for (seed, size, pixel_mm); the object is drawn in millimetres, so the same
    seed gives the same anatomy at any matrix size.
    """
    if size < 16 or not pixel_mm > 0:
        raise SimulationError(
            f"held-out phantom needs size >= 16 and pixel > 0 ({size}, {pixel_mm})"
        )
    rng = np.random.default_rng(seed)
    fov = size * pixel_mm
    half = fov / 2.0 * rng.uniform(0.70, 0.80)  # object half-height (mm), inside the scan FOV
    sx = half * rng.uniform(0.95, 1.25)  # body-like: wider than tall (x scale of the table)
    sy = half
    rot = math.radians(rng.uniform(-12.0, 12.0))
    x, y = _grid(size, pixel_mm)
    img = np.full(np.broadcast_shapes(x.shape, y.shape), AIR_HU)

    tissue = rng.uniform(20.0, 60.0)
    masks, interior = _paint_ellipses(img, x, y, rng, tissue, (sx, sy, rot))
    _add_lumpy_background(img, interior, rng, size, pixel_mm)
    _add_discs(img, x, y, masks[1], rng, tissue, (sx, sy))
    return _downsample(img, size).astype(np.float32)


def _paint_ellipses(
    img: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    tissue: float,
    frame: tuple[float, float, float],
) -> tuple[list[np.ndarray], np.ndarray]:
    """Shell, interior and the jittered Shepp-Logan ellipses (in place); the masks and the
    interior that carries the texture. ``frame`` is (x scale, y scale, rotation in rad)."""
    sx, sy, rot = frame
    shell = rng.uniform(-120.0, -80.0) if rng.random() < 0.5 else rng.uniform(500.0, 1000.0)
    pair_kind = "lung" if rng.random() < 0.35 else "fluid"
    pair_hu = rng.uniform(-900.0, -700.0, 2) if pair_kind == "lung" else rng.uniform(-10.0, 15.0, 2)
    values = [
        shell,
        tissue,
        pair_hu[0],
        pair_hu[1],
        tissue + rng.choice([-1, 1]) * rng.uniform(15.0, 60.0),
        *(tissue + rng.choice([-1, 1], 2) * rng.uniform(10.0, 80.0, 2)),
        *(tissue + rng.uniform(30.0, 150.0, 3)),
    ]
    masks: list[np.ndarray] = []
    for (x0, y0, a, b, deg), hu in zip(_SHEPP_LOGAN, values, strict=True):
        k = len(masks)
        if k < 2:  # shell and interior: concentric, the interior 4-10 % smaller (shell width)
            cx0, cy0, ang = 0.0, 0.0, 0.0
            ka = kb = 1.0 if k == 0 else float(rng.uniform(0.90, 0.96))
            a, b = _SHEPP_LOGAN[0][2], _SHEPP_LOGAN[0][3]
        else:
            cx0, cy0 = x0 + rng.normal(0.0, 0.02), -(y0 + rng.normal(0.0, 0.02))  # table y up
            ka, kb = rng.uniform(0.85, 1.15, 2)
            ang = math.radians(-deg + rng.uniform(-10.0, 10.0))
        cx = (cx0 * sx) * math.cos(rot) - (cy0 * sy) * math.sin(rot)
        cy = (cx0 * sx) * math.sin(rot) + (cy0 * sy) * math.cos(rot)
        m = _inside(x, y, cx, cy, a * ka * sx, b * kb * sy, ang + rot)
        if len(masks) == 1:  # the interior stays inside the shell
            m &= masks[0]
        masks.append(m)
        img[m] = hu
    interior = masks[1] & ~masks[2] & ~masks[3] if pair_kind == "lung" else masks[1]

    return masks, interior


def _add_lumpy_background(
    img: np.ndarray, interior: np.ndarray, rng: np.random.Generator, size: int, pixel_mm: float
) -> None:
    # Rolland-Barrett lumpy background: Gaussian lumps at uniform random positions (impulses
    # convolved with the lump profile)
    lump_px = rng.uniform(2.0, 6.0) * _SUPERSAMPLE / pixel_mm
    n_lumps = int(rng.integers(150, 400))
    tex = np.zeros(img.shape)
    m_px = size * _SUPERSAMPLE
    rows = rng.integers(0, m_px, n_lumps)
    cols = rng.integers(0, m_px, n_lumps)
    np.add.at(tex, (rows, cols), rng.choice([-1.0, 1.0], n_lumps))
    tex = ndi.gaussian_filter(tex, lump_px, mode="constant")
    tex_vals = tex[interior]
    if tex_vals.size and tex_vals.std() > 0:
        tex = (tex - tex_vals.mean()) / tex_vals.std() * rng.uniform(5.0, 20.0)
        img[interior] += tex[interior]


def _add_discs(
    img: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    inner: np.ndarray,
    rng: np.random.Generator,
    tissue: float,
    scale: tuple[float, float],
) -> None:
    sx, sy = scale
    # disc lesions (low and high contrast) and bright calcification dots inside the interior
    for radius_range, contrast in (((3.0, 15.0), None), ((1.0, 2.5), "calc")):
        count = int(rng.integers(3, 7)) if contrast is None else int(rng.integers(2, 6))
        for _ in range(count):
            r = rng.uniform(*radius_range)
            for _try in range(20):
                px, py = rng.uniform(-0.6 * sx, 0.6 * sx), rng.uniform(-0.6 * sy, 0.6 * sy)
                ix = int(np.argmin(np.abs(x[0] - px)))
                iy = int(np.argmin(np.abs(y[:, 0] - py)))
                if inner[iy, ix]:
                    break
            disc = ((x - px) ** 2 + (y - py) ** 2 <= r * r) & inner
            if contrast is None:
                img[disc] += rng.choice([-1, 1]) * rng.uniform(5.0, 100.0)
            else:
                img[disc] = tissue + rng.uniform(200.0, 800.0)


def phantom_pairs(
    n: int,
    *,
    size: int = HELDOUT_SIZE,
    pixel_mm: float = HELDOUT_PIXEL_MM,
    dose: float = 0.25,
    seed: int = 0,
    filter_name: str = HELDOUT_FILTER,
    n_views: int = HELDOUT_VIEWS,
    noise_seed: int | None = None,
) -> list[HeldoutSlice]:
    """Part (a): ``n`` held-out phantoms, each simulated on its own (seed ``base + seed + i``).

    The photon noise is seeded with the phantom seed, or ``noise_seed + i`` when given (another
    noise realisation of the same phantoms)."""
    settings = SimulationSettings(filter_name=filter_name, n_views=n_views)
    out = []
    for i in range(n):
        s = HELDOUT_SEED_BASE + seed + i
        clean = heldout_phantom(s, size, pixel_mm)
        ns = s if noise_seed is None else noise_seed + i
        pair = simulate_pair(clean, pixel_mm, dose, seed=ns, settings=settings)
        out.append(
            HeldoutSlice(
                name=f"heldout-phantom-{s}",
                part="phantom",
                low_hu=pair.low_hu[0],
                full_hu=pair.full_hu[0],
                pixel_mm=pixel_mm,
                info={"seed": s, "noise_seed": ns, "dose": dose, **settings.as_dict()},
            )
        )
    return out


def find_real_file(name: str) -> str | None:
    """Path of a pydicom / pydicom-data test file, or None when it is not installed."""
    from pydicom.data import get_testdata_file

    try:
        found = get_testdata_file(name, download=False)
    except (OSError, ValueError):
        return None
    return str(found) if found else None


def real_pairs(
    names: tuple[str, ...] = REAL_FILES, *, dose: float = 0.25, seed: int = 0
) -> tuple[list[HeldoutSlice], list[str]]:
    """Part (b): the real slices with simulated ``dose``; also the names that were not found."""
    from pipeline.io.read import read_volume
    from pipeline.simulate.from_volume import simulate_low_dose

    out: list[HeldoutSlice] = []
    missing: list[str] = []
    for name in names:
        path = find_real_file(name)
        if path is None:
            missing.append(name)
            continue
        vol = read_volume(path)
        res = simulate_low_dose(vol, dose, seed=seed, allow_cropped=True)
        out.append(
            HeldoutSlice(
                name=name,
                part="real",
                low_hu=res.hu[0],
                full_hu=vol.hu[0].astype(np.float32),
                pixel_mm=float(vol.spacing_mm[1]),
                info={**res.info, "warnings": res.warnings, "shape": list(vol.shape[1:])},
            )
        )
    return out, missing
