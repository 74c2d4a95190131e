"""evaluate stage: metrics (the project's only PSNR/SSIM/RMSE/MAE), profiles, QA, artifacts.

Modules: ``metrics`` (batched torch metrics), ``profiles`` (named conventions), ``batched``
(many slices, fast), ``body_mask``, ``noise`` (ROIs, NPS), ``sharpness`` (edge spread),
``artifacts`` (grid/seam detector), ``pairing``, ``stats``, ``qa``, ``runner`` (``ldct
evaluate``). See docs/evaluation.md.
"""
