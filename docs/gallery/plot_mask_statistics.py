"""
DropBlock masks: simulated against the exact moments
====================================================

The exact objectives of structdrop rest on two moments of the random mask ``z`` (1 = unit kept):
its mean ``mu_i = P(z_i = 1)`` and its covariance ``Cov(z_i, z_j)``. This example estimates both by
simulation and sets them next to the exact formulas of the scheme, for the original, overlapping
DropBlock of Ghiasi et al. on a layer of ``d = 40`` units with blocks of 7: every seed position
``j = 0 .. d - 7`` fires with probability ``gamma`` and drops units ``j .. j + 6``.

Two things are visible. The retain rate is not uniform: a unit near an edge is covered by fewer
seed positions, so it is kept more often (``mu_i = (1 - gamma)^|W(i)|``, ``W(i)`` the seeds
covering unit ``i``), which is why structdrop rescales each unit by its own ``mu_i``. And units
closer than a block apart are positively correlated (they are dropped together), with a
covariance that falls off linearly in the distance and vanishes from 7 units apart.

The masks come from two samplers: :meth:`structdrop.OverlappingDropBlock.sample_masks`, and a
few lines of NumPy below that draw the seeds and spread them over their blocks directly from the
definition. The right panel shows the standardised errors (estimate minus exact value, over its
standard error) of every mean and covariance entry. Each one is roughly a draw from N(0, 1); they
are not independent of each other (entries of neighbouring units come from the same masks), so
the histograms wander around the curve, but no entry should lie far outside +-4.
"""

import matplotlib.pyplot as plt
import numpy as np

import structdrop

d, block, count = 40, 7, 40_000
scheme = structdrop.OverlappingDropBlock(block, theta=0.8)  # interior units kept with prob. 0.8
mu = scheme.mask_mean(d)
cov = scheme.mask_covariance(d)


def masks_from_definition(rng: np.random.Generator) -> np.ndarray:
    """Seeds i.i.d. Bernoulli(gamma) at positions 0..d-block; a unit is dropped when any seed
    whose block covers it fires (a sliding-window maximum over the seeds)."""
    seeds = rng.random((count, d - block + 1)) < scheme.gamma
    padded = np.pad(seeds, ((0, 0), (block - 1, block - 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, block, axis=1)
    return 1.0 - windows.any(axis=2)[:, :d].astype(float)


samples = {
    "sample_masks": scheme.sample_masks(d, count, rng=0),
    "NumPy, from the definition": masks_from_definition(np.random.default_rng(1)),
}


def standardised_errors(z: np.ndarray) -> np.ndarray:
    """(estimate - exact) / standard error for the d means and the d (d + 1) / 2 covariances."""
    n = z.shape[0]
    mean = z.mean(axis=0)
    mean_se = np.sqrt(mu * (1 - mu) / n)
    centred = z - mu  # centred on the exact mean: each product c_i c_j is an unbiased sample
    cov_hat = centred.T @ centred / n
    squares = centred**2
    cov_se = np.sqrt(np.maximum(squares.T @ squares / n - cov_hat**2, 0.0) / n)
    upper = np.triu_indices(d)
    positive = cov_se[upper] > 0  # pairs that are never both dropped have no spread
    return np.concatenate(
        [(mean - mu) / mean_se, ((cov_hat - cov)[upper] / cov_se[upper])[positive]]
    )


for name, z in samples.items():
    errors = standardised_errors(z)
    print(
        f"{name:28s}: {errors.size} entries, "
        f"largest |standardised error| {np.abs(errors).max():.2f}"
    )

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
units = np.arange(d)
axes[0].plot(units, mu, "k-", lw=1.5, label="exact mu_i")
centre = d // 2
axes[1].plot(units, cov[centre], "k-", lw=1.5, label=f"exact, unit {centre}")
axes[1].plot(units, cov[0], "k:", lw=1.5, label="exact, unit 0")
bins = np.linspace(-5, 5, 41)
for (name, z), marker in zip(samples.items(), ("o", "x")):
    n = z.shape[0]
    axes[0].errorbar(
        units, z.mean(axis=0), yerr=2 * z.std(axis=0) / np.sqrt(n), fmt=marker, ms=3, label=name
    )
    centred = z - z.mean(axis=0)
    axes[1].plot(units, centred[:, centre] @ centred / n, marker, ms=3, label=name)
    axes[1].plot(units, centred[:, 0] @ centred / n, marker, ms=3, color="0.5")
    axes[2].hist(standardised_errors(z), bins=bins, density=True, histtype="step", label=name)
grid = np.linspace(-5, 5, 200)
axes[2].plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k-", lw=1, label="N(0, 1)")
axes[0].set(xlabel="unit i", ylabel="retain rate", title="mean (error bars: 2 SE)")
axes[1].set(xlabel="unit j", ylabel="Cov(z_i, z_j)", title=f"rows i = {centre} and i = 0")
axes[2].set(xlabel="standardised error", title="all means and covariances")
for ax in axes:
    ax.legend(fontsize=7)
plt.show()
