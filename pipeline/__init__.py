"""ldct-pipeline: low-dose CT denoising from DICOM in to derived DICOM out, with QA.

Stages (one subpackage each, dependencies flow one way, CLI -> stages -> core):
``io`` (DICOM read/write), ``data`` (intensity mappings, pairing, MONAI datasets),
``simulate`` (low-dose simulation, phantoms), ``models`` (edge-aware denoisers),
``losses`` (VGG16 perceptual loss and objectives), ``train``, ``infer`` (batch denoising),
``evaluate`` (metrics and artifact QA), ``report`` (HTML QA reports), ``cli``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ldct-pipeline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
