"""Classic spatiotemporal fusion methods (STARFM, ESTARFM, FSDAF, Fit-FC) on torch tensors (CPU or CUDA), or on
NumPy where torch is not installed (core/arrays.py)."""
