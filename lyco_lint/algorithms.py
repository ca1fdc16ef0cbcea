"""LyCORIS algorithms as data (filled in by the algorithm rules)."""
