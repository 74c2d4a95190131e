"""A seeded, anatomy-like abdominal CT phantom (clean HU volume), any size and slice count.

The anatomy is defined in millimetres in 3-D (ellipsoids, tubes, a periodic spine), so adjacent
slices are continuous and the same patient can be rendered at any matrix size. Per-patient
random draws (``seed``) change body size, organ positions/sizes/HU, the z range shown, lesions
and bowel gas. A correlated 3-D Gaussian random field gives organ texture. Contents: air, a
carbon-fibre table, subcutaneous fat, abdominal wall muscle, visceral fat, lung bases with
vessels, liver with vessels and low-contrast lesions, spleen, kidneys (cortex/medulla), aorta,
IVC, vertebrae (cortical shell, cancellous bone, discs, canal, posterior elements), ribs, bowel.

Image axes follow DICOM: columns run to the patient's left (x), rows to posterior (y); the
patient's liver therefore appears on the image's left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from pipeline.errors import SimulationError
from pipeline.intensity import AIR_HU

#: default reconstruction field of view (mm) for phantoms: a typical adult abdomen FOV
DEFAULT_FOV_MM = 380.0
DEFAULT_SLICE_MM = 2.5


@dataclass(frozen=True)
class Phantom:
    """A clean HU volume (Z, Y, X) float32 with its voxel spacing (z, y, x) in mm."""

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]
    #: z (mm) of each slice in the anatomy's own coordinates (head-to-foot increases)
    z_mm: np.ndarray
    #: centres (x, y, z mm) and radii (mm) of the low-contrast lesions, with their contrast (HU)
    lesions: list[dict[str, float]]


class _Canvas:
    """Paints soft-edged shapes (one-pixel linear edge ramp, i.e. anti-aliased) on a volume."""

    def __init__(self, n: int, pixel_mm: float, z_mm: np.ndarray) -> None:
        c = (np.arange(n) - (n - 1) / 2.0) * pixel_mm
        self.x = c[None, None, :]
        self.y = c[None, :, None]
        self.z = z_mm[:, None, None]
        self.px = pixel_mm
        self.hu = np.full((len(z_mm), n, n), AIR_HU, dtype=np.float32)

    def ellipse(
        self,
        cx: float | np.ndarray,
        cy: float | np.ndarray,
        ax: float,
        ay: float,
        *,
        zc: float = 0.0,
        rz: float = np.inf,
        angle: float = 0.0,
    ) -> np.ndarray:
        """Fractional coverage (Z, N, N) of an ellipse (ellipsoid if ``rz`` is finite)."""
        s = np.sqrt(np.clip(1.0 - ((self.z - zc) / rz) ** 2, 0.0, 1.0))  # (Z, 1, 1)
        ca, sa = np.cos(angle), np.sin(angle)
        dx, dy = self.x - cx, self.y - cy
        u, v = dx * ca + dy * sa, -dx * sa + dy * ca
        axs, ays = np.maximum(ax * s, 1e-6), np.maximum(ay * s, 1e-6)
        d = np.sqrt((u / axs) ** 2 + (v / ays) ** 2)
        edge = np.minimum(axs, ays) / self.px
        cover = np.clip((1.0 - d) * edge + 0.5, 0.0, 1.0)
        return np.where(s > 0, cover, 0.0).astype(np.float32)

    def paint(self, cover: np.ndarray, value: float | np.ndarray) -> None:
        self.hu += cover * (value - self.hu)


def _texture(
    shape: tuple[int, ...],
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    corr_mm: float,
) -> np.ndarray:
    """Zero-mean, unit-SD correlated Gaussian random field (correlation length ``corr_mm``)."""
    field = rng.standard_normal(shape).astype(np.float32)
    sigma = [corr_mm / s for s in spacing]
    field = gaussian_filter(field, sigma=sigma, mode="reflect")
    sd = float(field.std())
    return field / sd if sd > 0 else field


def make_phantom(
    n_slices: int,
    size: int,
    seed: int,
    *,
    fov_mm: float = DEFAULT_FOV_MM,
    slice_mm: float = DEFAULT_SLICE_MM,
    z_start_mm: float | None = None,
) -> Phantom:
    """Render patient ``seed`` as a (n_slices, size, size) HU volume.

    ``z_start_mm`` selects the anatomy shown (0 = lung bases/dome of liver, ~200 = kidneys);
    by default it is drawn from the seed, so patients show different levels.
    """
    if n_slices < 1 or size < 16:
        raise SimulationError(f"phantom needs >= 1 slice and size >= 16, found {n_slices}, {size}")
    rng = np.random.default_rng(seed)
    pixel = fov_mm / size
    z0 = float(rng.uniform(0.0, 140.0)) if z_start_mm is None else float(z_start_mm)
    z_mm = z0 + slice_mm * np.arange(n_slices)
    cv = _Canvas(size, pixel, z_mm)
    j = _jitter(rng)
    ax, ay = float(np.clip(150.0 + j(12), 125, 168)), float(np.clip(108.0 + j(9), 90, 125))
    cy = -8.0 + j(3)
    fat_mm, wall_mm = 14.0 + j(4), 11.0 + j(2)
    b = _Torso(ax, ay, cy, fat_mm, wall_mm, z0, slice_mm * n_slices)
    spacing = (slice_mm, pixel, pixel)
    tex = _texture(cv.hu.shape, spacing, rng, 2.5)
    tex2 = _texture(cv.hu.shape, spacing, rng, 6.0)
    # the painting order matters: each organ overwrites what lies under it, and every
    # painter draws from ``rng`` in a fixed order (a seed always renders the same patient)
    _paint_table(cv, b, fov_mm)
    _paint_body(cv, b, tex, tex2)
    _paint_lungs(cv, b, rng, tex)
    lesions = _paint_liver(cv, b, rng, tex)
    _paint_abdomen(cv, b, rng, tex)
    _paint_spine_and_ribs(cv, b, rng, tex)
    return Phantom(hu=cv.hu, spacing_mm=(slice_mm, pixel, pixel), z_mm=z_mm, lesions=lesions)


def _jitter(rng: np.random.Generator) -> Callable[[float], float]:
    """``j(scale)``: one normal draw of SD ``scale`` (the anatomy's random variation)."""
    return lambda scale: float(rng.normal(0.0, scale))


@dataclass(frozen=True)
class _Torso:
    """Outline of one patient's torso (mm) that every organ is placed against."""

    ax: float
    ay: float
    cy: float
    fat_mm: float
    wall_mm: float
    z0: float
    length_mm: float  # z extent of the rendered slices

    @property
    def inner_ax(self) -> float:
        return self.ax - self.fat_mm - self.wall_mm

    @property
    def inner_ay(self) -> float:
        return self.ay - self.fat_mm - self.wall_mm


def _paint_table(cv: _Canvas, b: _Torso, fov_mm: float) -> None:
    # table: carbon-fibre shell with foam core, curved slightly, below the back
    ty = b.cy + b.ay + 3.0
    table_w = min(175.0, 0.45 * fov_mm)
    inside = np.abs(cv.x) < table_w
    top = cv.ellipse(0.0, ty + 420.0, table_w * 5.0, 425.0) * inside
    core = cv.ellipse(0.0, ty + 420.0, table_w * 5.0, 420.0) * inside
    cap = cv.ellipse(0.0, ty + 420.0, table_w * 5.0, 402.0)
    bottom = cv.ellipse(0.0, ty + 420.0, table_w * 5.0, 397.0)
    cv.paint(top * (1 - bottom), 250.0)  # 5 mm shells around an 18 mm foam core
    cv.paint(core * (1 - cap), -880.0)


def _paint_body(cv: _Canvas, b: _Torso, tex: np.ndarray, tex2: np.ndarray) -> None:
    # body: subcutaneous fat, muscle wall, visceral fat
    cv.paint(cv.ellipse(0.0, b.cy, b.ax, b.ay), -105.0 + 10.0 * tex)
    cv.paint(cv.ellipse(0.0, b.cy, b.ax - b.fat_mm, b.ay - b.fat_mm), 52.0 + 6.0 * tex)
    cv.paint(cv.ellipse(0.0, b.cy + 4.0, b.inner_ax, b.inner_ay - 4.0), -90.0 + 10.0 * tex2)


def _paint_lungs(cv: _Canvas, b: _Torso, rng: np.random.Generator, tex: np.ndarray) -> None:
    j = _jitter(rng)
    # lung bases (upper slices): large ellipsoids ending at z ~ 40-70 mm, vessels inside
    lung_end = 55.0 + j(10)
    for side in (-1.0, 1.0):
        cx_l = side * (0.48 * b.inner_ax)
        lung = cv.ellipse(
            cx_l, b.cy + 5.0, 0.42 * b.inner_ax, 0.8 * b.inner_ay, zc=lung_end - 150.0, rz=150.0
        )
        cv.paint(lung, -860.0 + 25.0 * tex)
        for _ in range(6):
            vx, vy = (
                cx_l + rng.uniform(-0.3, 0.3) * b.inner_ax,
                b.cy + rng.uniform(-0.5, 0.5) * b.inner_ay,
            )
            dx, dy = rng.normal(0, 0.15, 2)
            cv.paint(
                cv.ellipse(vx + dx * (cv.z - b.z0), vy + dy * (cv.z - b.z0), 2.5, 2.5) * lung, 40.0
            )


def _paint_liver(
    cv: _Canvas, b: _Torso, rng: np.random.Generator, tex: np.ndarray
) -> list[dict[str, float]]:
    j = _jitter(rng)
    # liver (patient right = image left) with vessels and low-contrast lesions
    lc = (-0.38 * b.inner_ax + j(5), b.cy - 5.0 + j(5), 95.0 + j(10))
    la = (0.55 * b.inner_ax, 0.75 * b.inner_ay, 110.0)
    liver_hu = 62.0 + j(4)
    liver = cv.ellipse(lc[0], lc[1], la[0], la[1], zc=lc[2], rz=la[2], angle=0.2)
    cv.paint(liver, liver_hu + 5.0 * tex)
    for _ in range(5):
        vx, vy = lc[0] + rng.uniform(-0.5, 0.5) * la[0], lc[1] + rng.uniform(-0.5, 0.5) * la[1]
        dx, dy = rng.normal(0, 0.2, 2)
        r = rng.uniform(2.0, 4.5)
        cv.paint(cv.ellipse(vx + dx * (cv.z - b.z0), vy + dy * (cv.z - b.z0), r, r) * liver, 140.0)
    lesions: list[dict[str, float]] = []
    for _ in range(int(rng.integers(2, 5))):
        r = float(rng.uniform(4.0, 12.0))
        ez = float(b.z0 + rng.uniform(0, b.length_mm))
        ex = float(lc[0] + rng.uniform(-0.45, 0.45) * la[0])
        ey = float(lc[1] + rng.uniform(-0.45, 0.45) * la[1])
        contrast = float(rng.choice([-1.0, 1.0]) * rng.uniform(10.0, 30.0))
        cv.paint(cv.ellipse(ex, ey, r, r, zc=ez, rz=r) * liver, liver_hu + contrast)
        lesions.append(
            {"x_mm": ex, "y_mm": ey, "z_mm": ez, "radius_mm": r, "contrast_hu": contrast}
        )
    return lesions


def _paint_abdomen(cv: _Canvas, b: _Torso, rng: np.random.Generator, tex: np.ndarray) -> None:
    j = _jitter(rng)
    # spleen (patient left, posterior)
    cv.paint(
        cv.ellipse(
            0.6 * b.inner_ax + j(4),
            b.cy + 0.35 * b.inner_ay,
            28.0 + j(3),
            45.0 + j(4),
            zc=85.0 + j(10),
            rz=65.0,
            angle=-0.5,
        ),
        48.0 + j(3) + 5.0 * tex,
    )
    # kidneys: cortex and medulla, lower levels
    kz = 185.0 + j(10)
    for side in (-1.0, 1.0):
        kx, ky = side * (0.42 * b.inner_ax) + j(3), b.cy + 0.55 * b.inner_ay
        cv.paint(cv.ellipse(kx, ky, 26.0, 32.0, zc=kz, rz=55.0, angle=side * 0.4), 150.0 + 4 * tex)
        cv.paint(cv.ellipse(kx + side * 4, ky, 14.0, 18.0, zc=kz, rz=40.0, angle=side * 0.4), 35.0)
    # bowel: fluid loops and gas pockets, anterior and lower
    for _ in range(int(rng.integers(4, 9))):
        bx = rng.uniform(-0.1, 0.6) * b.inner_ax
        by = b.cy + rng.uniform(-0.7, 0.0) * b.inner_ay
        bz = b.z0 + rng.uniform(-20.0, b.length_mm + 20.0)
        r = rng.uniform(8.0, 18.0)
        gas = rng.random() < 0.4
        cv.paint(
            cv.ellipse(bx, by, r, r * 0.8, zc=bz, rz=2.5 * r), -900.0 if gas else 25.0 + 4 * tex
        )


def _paint_spine_and_ribs(
    cv: _Canvas, b: _Torso, rng: np.random.Generator, tex: np.ndarray
) -> None:
    j = _jitter(rng)
    # great vessels in front of the spine
    sy = b.cy + b.inner_ay - 32.0  # vertebral body centre
    cv.paint(cv.ellipse(14.0, sy - 30.0, 11.5, 11.5), 160.0 + j(10))  # aorta (arterial phase)
    cv.paint(cv.ellipse(-24.0, sy - 26.0, 11.0, 9.0), 110.0 + j(8))  # IVC
    # spine: vertebral body (cortex + cancellous), discs every ~32 mm, canal, posterior elements
    disc = (np.mod(cv.z - j(10), 32.0) < 6.0).astype(np.float32)  # (Z, 1, 1)
    body = cv.ellipse(0.0, sy, 22.0, 19.0)
    cancellous = cv.ellipse(0.0, sy, 19.5, 16.5)
    cv.paint(body, 700.0 * (1 - disc) + 90.0 * disc)
    cv.paint(cancellous * (1 - disc), 220.0 + 25.0 * tex)
    post = cv.ellipse(0.0, sy + 34.0, 30.0, 11.0) * (1 - disc)
    cv.paint(post, 480.0)
    cv.paint(cv.ellipse(0.0, sy + 27.0, 8.0, 8.0), 15.0)  # canal (CSF/cord)
    cv.paint(cv.ellipse(0.0, sy + 52.0, 6.0, 9.0) * (1 - disc), 420.0)  # spinous process
    # ribs: small cortical ovals just inside the muscle wall, drifting with z (oblique ribs)
    for k in range(10):
        phi = np.pi * (0.15 + 0.7 * (k % 5) / 4.0) + (np.pi if k >= 5 else 0.0)
        rib_r = 1.0 - (b.fat_mm + 0.5 * b.wall_mm) / min(b.ax, b.ay) * 0.9
        drift = 0.004 * (cv.z - 60.0)
        rx = b.ax * rib_r * np.cos(phi + drift)
        ry = b.cy + b.ay * rib_r * np.sin(phi + drift)
        present = (np.mod(cv.z + 12.0 * k, 36.0) < 14.0) & (cv.z < 200.0)
        cv.paint(cv.ellipse(rx, ry, 6.0, 4.5) * present, 650.0)
