"""ldct-pipeline: low-dose CT denoising from DICOM in to derived DICOM out, with QA.

The distribution is ``ldct-pipeline``; the import name is ``pipeline`` (the specified layout).
Stages (one subpackage each, each with a lazy public face in its ``__init__``; imports point
one way, CLI -> stages -> core): ``io`` (DICOM read/write), ``data`` (pairing, splits, MONAI
datasets), ``simulate`` (low-dose simulation, phantoms), ``models`` (edge-aware denoisers),
``losses`` (VGG16 perceptual loss and objectives), ``train``, ``infer`` (batch denoising),
``evaluate`` (metrics and artifact QA), ``report`` (HTML QA reports), ``pacs`` (DICOM
networking, ``ldct serve``), ``cli``. Core modules: ``errors``, ``config``, ``intensity``
(windows, air, HU <-> model range), ``records`` (hand-offs between stages), ``utils``.
See docs/architecture.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ldct-pipeline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
