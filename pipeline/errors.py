"""The project's exception hierarchy.

Every error a user can cause (bad file, bad config, missing weights) is an :class:`LdctError`
subclass with a message that names the thing (file, option) and what was expected and found.
The CLI turns these into one-line messages and the exit code below; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path


class ExitCode:
    """Process exit codes that scripts can rely on."""

    OK = 0
    #: The run completed but some items (series, files, patients) failed; see the manifest.
    PARTIAL_FAILURE = 1
    #: Bad command line or configuration.
    USAGE = 2
    #: Input could not be used at all (nothing readable, wrong kind of data).
    INPUT = 3
    #: A required resource is missing or unusable (weights, checkpoint, external tool, an output
    #: folder that cannot be written: read-only, full disk, permission denied).
    RESOURCE = 4
    #: A DICOM peer could not be reached or refused us (association rejected, timeout, abort).
    NETWORK = 5


class LdctError(Exception):
    """Base class of all errors the pipeline raises on purpose."""

    exit_code: int = ExitCode.INPUT

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class ConfigError(LdctError):
    """A configuration file or option is invalid."""

    exit_code = ExitCode.USAGE


class DicomError(LdctError):
    """A DICOM file or series cannot be used (unreadable, inconsistent, unsupported)."""


class GeometryError(DicomError):
    """Slices of a series do not form a consistent volume, or two volumes do not align."""


class SimulationError(LdctError):
    """Low-dose simulation refused its input (not CT, absurd dose, cropped field of view...)."""


class DatasetError(LdctError):
    """A paired dataset is malformed (misaligned pairs, leakage across splits, ...)."""


class CheckpointError(LdctError):
    """A model checkpoint is missing, corrupt, or belongs to another model/version."""

    exit_code = ExitCode.RESOURCE


class DependencyError(LdctError):
    """An optional package that the requested feature needs is not installed."""

    exit_code = ExitCode.RESOURCE


class WeightsError(LdctError):
    """Pretrained (VGG16) weights are missing or do not verify."""

    exit_code = ExitCode.RESOURCE


class TrainingError(LdctError):
    """Training cannot continue (non-finite loss or gradients, bad resume state)."""

    exit_code = ExitCode.PARTIAL_FAILURE


class PacsError(LdctError):
    """A DICOM network operation failed (peer unreachable, association rejected, timeout)."""

    exit_code = ExitCode.NETWORK

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)
