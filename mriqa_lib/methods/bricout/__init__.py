"""Paper slice: synthetic-motion SFCN pretraining and QC transfer (Bricout et al., paper 5)."""
