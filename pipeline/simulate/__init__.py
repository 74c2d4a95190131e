"""Low-dose CT simulation (sinogram domain), anatomy-like phantoms and the paired demo cohort.

Modules: ``geometry`` (parallel-beam scan, HU <-> attenuation), ``projector`` (forward
projection, ramp filters, FBP), ``matrices`` (cached sparse system matrices), ``noise``
(Poisson + electronic noise, I0 calibration), ``lowdose`` (pairs from clean images, noise
insertion), ``from_volume`` (``ldct simulate`` on a CT series), ``phantom``, ``cohort``
(``ldct demo-data``). See docs/simulation.md.
"""
