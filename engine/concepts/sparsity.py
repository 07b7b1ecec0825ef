"""The default sparsity of concept codes, in a module without torch (read by `earmark status`)."""

# The paper's setting for ~35–45 concepts, the range that matches dense CLAP downstream.
DEFAULT_LAM = 0.15
