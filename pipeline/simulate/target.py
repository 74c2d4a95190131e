"""The expected full-dose training target: the full dose's expectation given the low dose.

Trained against the noisy full dose, MSE converges to ``E[full | low]``, but every step also fits
the full dose's own noise realisation, which no network can predict from the low dose. The two
doses share photons (binomial thinning), so in the linear regime the full-dose noise is the part
``beta`` of the low-dose noise plus an independent rest: ``n_full = beta * n_low + r``. Then
``noiseless + beta * (low - noiseless)`` (``noiseless``: FBP of the noise-free sinogram,
:func:`pipeline.simulate.trainset.noiseless_recon`) has the same expectation given the low dose
as the full dose, and none of ``r``. Used by :mod:`pipeline.simulate.trainset`.
"""

from __future__ import annotations

import numpy as np

#: noise beyond this many robust SDs is outside the linear (Gaussian) regime: photon-starvation
#: streaks that both doses share, where the full dose itself is the target
LINEAR_LIMIT_SD = 5.0


def _robust_sd(v: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(v)))


def expected_full(
    noiseless: np.ndarray, full: np.ndarray, low: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """The full dose's expectation given the low dose: (target, beta, linear fraction).

    Where both noises are within :data:`LINEAR_LIMIT_SD` robust SDs (the linear regime), the
    target is ``noiseless + beta * (low - noiseless)`` with ``beta`` the least-squares regression
    of the full-dose noise on the low-dose noise over those pixels; elsewhere (streaks from photon
    starvation, which the doses share nonlinearly) it is the full dose itself, so the target is
    never less faithful than the full dose. For binomial thinning ``beta`` is the dose fraction
    (measured: 0.057 at dose 0.059, 0.192 at 0.194, 0.469 at 0.471, electronic noise 2.6-9.2
    counts).
    """
    c = noiseless.astype(np.float64)
    n_low = low.astype(np.float64) - c
    n_full = full.astype(np.float64) - c
    lin = (np.abs(n_low) <= LINEAR_LIMIT_SD * _robust_sd(n_low)) & (
        np.abs(n_full) <= LINEAR_LIMIT_SD * _robust_sd(n_full)
    )
    denom = float(np.sum(n_low[lin] ** 2))
    beta = float(np.sum(n_full[lin] * n_low[lin]) / denom) if denom > 0 else 0.0
    beta = min(max(beta, 0.0), 1.0)
    target = np.where(lin, c + beta * n_low, full.astype(np.float64))
    return target.astype(np.float32), beta, float(lin.mean())
