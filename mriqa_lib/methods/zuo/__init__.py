"""Paper slice: contrastive artifact latent + RealNVP density (Zuo et al., paper 2)."""
