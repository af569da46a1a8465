"""The hardware side: the sourced device catalog (catalog) and the kernel-level achieved rates
per device and dtype (kernels): GEMM by shape, fused attention, memory copies, collectives."""
