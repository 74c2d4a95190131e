"""Intensity mappings, paired datasets and the MONAI data pipeline."""
