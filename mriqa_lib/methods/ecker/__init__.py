"""Paper slice: SimCLR zero-shot HQ/LQ classification (Ecker et al., paper 1)."""
