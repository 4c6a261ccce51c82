"""The config model and the checker primitives every component reads its options with."""
