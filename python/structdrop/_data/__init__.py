"""Internals that read and write data: column chunks of arrays and memory maps, .npy/.npz files,
files written atomically, and the moments of dask arrays (imported only when dask data come)."""
