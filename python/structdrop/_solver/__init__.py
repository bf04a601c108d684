"""Internals of the closed-form solve: the row-space reduction of the data (Gram or QR route), the
power-of-two rescaling of spectra, and the factorisation's projector sums with their numerical
least-squares solve."""
