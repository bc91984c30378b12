"""The differentiable ops, grouped by family; each is a Function plus a lower-case function."""
