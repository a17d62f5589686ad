"""Classic spatiotemporal fusion methods (STARFM, ESTARFM, FSDAF) on torch tensors, CPU or CUDA."""
