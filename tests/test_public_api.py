"""The public face of every stage: an inventory that fails when a name is removed or breaks.

As kornia does, each stage's public names are listed here; removing one from a stage (or
breaking its import) fails this test, so the names docs, notebooks and other stages rely on stay.
Adding a name means adding it here too. The faces are lazy: importing a stage package loads no
submodule, so ``ldct --help`` pays nothing for them.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("io", "data", "simulate", "models", "losses", "train", "infer", "evaluate", "report",
          "pacs", "cli", "utils")  # fmt: skip
#: top-level core modules docs may import from directly (not stages)
CORE = {"pipeline", "pipeline.intensity", "pipeline.config", "pipeline.errors", "pipeline.records"}

INVENTORY: dict[str, frozenset[str]] = {
    "io": frozenset(
        {
            "CTVolume",
            "Deidentifier",
            "DerivedInfo",
            "DerivedSeriesWriter",
            "OutputSyntax",
            "Rescale",
            "ScanResult",
            "SeriesRecord",
            "SkippedFile",
            "SliceInfo",
            "WrittenSeries",
            "derive_uid",
            "hu_to_stored",
            "is_lossy",
            "is_valid_uid",
            "key_fingerprint",
            "read_series",
            "read_volume",
            "record_flags",
            "scan",
            "series_description",
            "sort_slices",
            "stored_range",
            "stored_to_hu",
            "stored_value_hu",
            "write_derived_series",
            "write_new_series",
        }
    ),
    "data": frozenset(
        {
            "DataConfig",
            "DatasetReport",
            "Pair",
            "PairSpec",
            "PairedPatchDataset",
            "Splits",
            "build_eval_loader",
            "build_loaders",
            "build_store",
            "build_train_loader",
            "check_dataset",
            "check_leakage",
            "discover_pairs",
            "explicit_splits",
            "load_pair",
            "load_splits",
            "make_splits",
            "match_slices",
            "pair_volumes",
            "read_manifest",
            "save_splits",
            "scan_pairs",
            "slice_positions_mm",
            "write_manifest",
        }
    ),
    "simulate": frozenset(
        {
            "LowDoseResult",
            "ParallelGeometry",
            "SimulationSettings",
            "calibrate_noise",
            "check_dose",
            "fbp",
            "forward_project",
            "hu_to_mu",
            "insert_noise",
            "make_demo_cohort",
            "make_phantom",
            "mu_to_hu",
            "simulate_low_dose",
            "simulate_pair",
            "write_low_dose_series",
        }
    ),
    "models": frozenset(
        {
            "DEFAULT_MODEL",
            "DRLE",
            "REDCNN",
            "ClassicalConfig",
            "ModelConfig",
            "ModelSpec",
            "SeriesFacts",
            "SobelEdges",
            "TrainingEnvelope",
            "build_from_config",
            "build_model",
            "count_parameters",
            "gflops_per_slice",
            "is_classical",
            "list_models",
            "load_checkpoint",
            "model_hash",
            "model_names",
            "precision_label",
            "predict",
            "prepare_for_inference",
            "resolve_params",
            "resolve_precision",
            "review_reasons",
            "save_checkpoint",
            "sobel_edges",
        }
    ),
    "losses": frozenset(
        {
            "LossConfig",
            "PerceptualConfig",
            "PerceptualLoss",
            "VGG16Features",
            "build_objective",
            "gram_matrix",
            "load_imagenet_features",
            "random_features_state",
            "weights_status",
            "windows_to_rgb",
        }
    ),
    "train": frozenset(
        {
            "DistEnv",
            "LoopConfig",
            "MetricsLog",
            "TrainConfig",
            "Trainer",
            "load_train_config",
            "read_jsonl",
            "run_training",
        }
    ),
    "infer": frozenset(
        {
            "ClassicalDenoiser",
            "DenoiseConfig",
            "Denoiser",
            "Plan",
            "PlanItem",
            "SessionSummary",
            "TilingConfig",
            "build_plan",
            "denoise_planned",
            "load_denoiser",
            "plan_inputs",
            "resolve_model_path",
            "tile_starts",
            "tiled_apply",
        }
    ),
    "evaluate": frozenset(
        {
            "DEFAULT_PROFILES",
            "DEFAULT_THRESHOLDS",
            "PROFILES",
            "ArtifactThresholds",
            "EvalItem",
            "MetricProfile",
            "body_mask_slice",
            "compute_profile",
            "edge_spread",
            "evaluate",
            "find_uniform_rois",
            "flag_patient",
            "get_profile",
            "mae",
            "mse",
            "pair_inputs",
            "paired_tests",
            "per_patient",
            "psnr",
            "radial_nps",
            "rmse",
            "score_slice",
            "ssim",
            "stored_padding_hu",
        }
    ),
    "report": frozenset(
        {
            "ReportConfig",
            "ReportResult",
            "Rule",
            "build_report",
            "default_rules",
            "judge",
            "load_eval",
        }
    ),
    "pacs": frozenset(
        {
            "NetOptions",
            "Node",
            "ServeConfig",
            "Service",
            "Spool",
            "StudyQuery",
            "StudyRecord",
            "TlsConfig",
            "WebNode",
            "echo",
            "find_studies",
            "qido_studies",
            "read_status",
            "retrieve_studies",
            "send_outputs",
        }
    ),
    "cli": frozenset({"app", "ldct"}),
    "utils": frozenset(
        {
            "LineProgress",
            "atomic_path",
            "atomic_write_bytes",
            "atomic_write_text",
            "check_shape",
            "ensure_inside",
            "fsync_dir",
            "is_within",
            "pid_alive",
            "printable",
            "progress_bar",
            "publish_file",
            "read_text",
            "sha256_file",
        }
    ),
}


def _type_checking_imports(stage: str) -> dict[str, tuple[str, str]]:
    """Public name -> (module, source name) imported under ``if TYPE_CHECKING`` in the face."""
    tree = ast.parse((ROOT / "pipeline" / stage / "__init__.py").read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module:
                    for a in imp.names:
                        out[a.asname or a.name] = (imp.module, a.name)
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_inventory_names_import_from_the_stage(stage: str) -> None:
    face = importlib.import_module(f"pipeline.{stage}")
    assert set(face.__all__) == INVENTORY[stage], "update INVENTORY only when the API changes"
    typed = _type_checking_imports(stage)
    assert set(typed) == set(face.__all__), "TYPE_CHECKING imports and __all__ differ"
    for name in sorted(INVENTORY[stage]):
        module, source = typed[name]
        assert getattr(face, name) is getattr(importlib.import_module(module), source), name
    assert set(dir(face)) >= INVENTORY[stage]


@pytest.mark.parametrize("stage", STAGES)
def test_no_public_name_shadows_a_submodule(stage: str) -> None:
    """``pipeline.evaluate.body_mask`` is a module: a function of that name would be replaced
    by the module once it is imported, so faces never publish such a name."""
    pkg = ROOT / "pipeline" / stage
    submodules = {p.stem for p in pkg.glob("*.py")} | {p.name for p in pkg.iterdir() if p.is_dir()}
    assert INVENTORY[stage].isdisjoint(submodules)


def test_unknown_name_is_an_attribute_error() -> None:
    import pipeline.evaluate

    with pytest.raises(AttributeError, match=r"pipeline\.evaluate' has no attribute 'psnrr'"):
        _ = pipeline.evaluate.psnrr  # type: ignore[attr-defined]
    from pipeline.evaluate import metrics  # a submodule still imports as a module

    assert metrics.__name__ == "pipeline.evaluate.metrics"


def test_importing_the_faces_loads_no_submodule() -> None:
    """Lazy faces: the stage packages import nothing heavy until a name is used."""
    code = (
        "import sys, json\n"
        f"for s in {list(STAGES)!r}: __import__('pipeline.' + s)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('pipeline', 'numpy', "
        "'torch', 'pydicom')))))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(res.stdout)
    assert loaded == sorted(["pipeline", "pipeline._lazy", *(f"pipeline.{s}" for s in STAGES)])


_DEEP_IMPORT = re.compile(r"^\s*(?:from\s+(pipeline(?:\.\w+)*)\s+import|import\s+(pipeline\S*))")


def _code_lines() -> list[tuple[str, str]]:
    out = []
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        out += [(doc.name, line) for line in doc.read_text(encoding="utf-8").splitlines()]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                out += [(nb.name, line) for line in "".join(cell["source"]).splitlines()]
    return out


def test_docs_and_notebooks_import_only_stage_packages() -> None:
    allowed = CORE | {f"pipeline.{s}" for s in STAGES}
    deep = []
    for where, line in _code_lines():
        m = _DEEP_IMPORT.match(line)
        if m and (m.group(1) or m.group(2)) not in allowed:
            deep.append(f"{where}: {line.strip()}")
    assert deep == []
