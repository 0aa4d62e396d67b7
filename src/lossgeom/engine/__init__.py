"""The curvature engine: the operator protocol, Hessian products, Lanczos eigenpairs, trace and density."""
