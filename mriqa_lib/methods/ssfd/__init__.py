"""Paper slice: SSFD self-supervised feature distance (Adamson et al., paper 4)."""
