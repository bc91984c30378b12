"""Loss functions (MSE, cross-entropy, NLL, binary cross-entropy) and metrics."""
