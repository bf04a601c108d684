"""
Phase diagram of the global minimum
===================================

DropBlock keeps each block of ``r`` consecutive hidden units with probability ``theta`` and drops
it otherwise. In expectation this adds a penalty to the least-squares loss, and the best product
``A = U V^T X`` a network can reach is known in closed form: it shrinks the singular values of the
targets and sets the small ones to zero (the corrected Theorem 7). Two knobs decide how much is
cut: the block size ``r`` and the product-space retain probability ``theta_bar``.

This example solves the problem in closed form on a 30 x 40 grid of ``(r, theta_bar)`` with one
call of :func:`structdrop.sweep_global_min`, on the paper's synthetic regression (targets of rank
50), and draws two maps: the rank of the minimiser and the share of the targets' energy that the
minimum leaves unexplained. Much dropping (small ``theta_bar``) gives a low-rank, strongly shrunk
solution. At a fixed ``theta_bar``, larger blocks keep more directions and leave less unexplained:
with ``r = 1`` (Dropout) the penalty acts like a squared nuclear norm, which favours few singular
values, and as ``r`` grows it moves towards a squared Frobenius norm, which shrinks all of them
alike.

The third panel takes the three marked points of the grid, solves each again with
:func:`structdrop.dropblock_global_min`, and compares its singular values with those of the
targets: the largest ones are only scaled down, the next ones are cut by a common amount, and
the rest are set to zero.
"""

import matplotlib.pyplot as plt
import numpy as np

import structdrop

problem = structdrop.paper_synthetic(seed=0)  # X: 100 x 1000 inputs, Y = M X: 80 x 1000 targets
block_sizes = np.arange(1, 31)
theta_bars = np.linspace(0.05, 0.95, 40)
grid = structdrop.sweep_global_min(
    problem.Y, block_sizes=block_sizes, theta_bars=theta_bars, X=problem.X
)
energy = float(np.sum(problem.Y**2))
print(f"rank of the minimiser over the grid: {grid.rank.min()} to {grid.rank.max()}")

# %%
# Three settings solved one at a time; ``rho - 1`` is the number of singular values that are only
# scaled down, ``rank`` the number that stay non-zero.
settings = [(2, 0.8), (10, 0.5), (25, 0.3)]
solutions = {}
for r, theta_bar in settings:
    solution = structdrop.dropblock_global_min(
        problem.Y, block_size=r, theta_bar=theta_bar, X=problem.X
    )
    print(
        f"r = {r:2d}, theta_bar = {theta_bar}: rank {solution.rank}, rho {solution.rho}, "
        f"minimum / ||Y||^2 = {solution.objective / energy:.4f}"
    )
    solutions[(r, theta_bar)] = solution

# %%
# The two maps over the grid, and the spectra of the three single solutions.
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
extent = (theta_bars[0], theta_bars[-1], block_sizes[0] - 0.5, block_sizes[-1] + 0.5)
shown = axes[0].imshow(grid.rank, origin="lower", aspect="auto", extent=extent, cmap="viridis")
fig.colorbar(shown, ax=axes[0], label="rank of the minimiser")
shown = axes[1].imshow(
    grid.objective / energy, origin="lower", aspect="auto", extent=extent, cmap="magma"
)
fig.colorbar(shown, ax=axes[1], label="minimum / ||Y||^2")
for ax in axes[:2]:
    ax.set_xlabel("theta_bar (product-space retain probability)")
    ax.set_ylabel("block size r")
    for r, theta_bar in settings:
        ax.plot(theta_bar, r, "w+", ms=9)

m = grid.target_singular_values
axes[2].semilogy(np.arange(1, m.size + 1), m, "k.", ms=4, label="targets Y")
for (r, theta_bar), solution in solutions.items():
    kept = solution.singular_values[: solution.rank]
    axes[2].semilogy(
        np.arange(1, kept.size + 1), kept, "o-", ms=3, label=f"r = {r}, theta_bar = {theta_bar}"
    )
axes[2].set_xlabel("index i")
axes[2].set_ylabel("singular value")
nonzero = m[m > 1e-8 * m[0]]  # Y has rank 50: the other singular values are rounding noise
axes[2].set_xlim(0, nonzero.size + 2)
axes[2].set_ylim(bottom=nonzero.min() / 2)
axes[2].legend(fontsize=7)
plt.show()
