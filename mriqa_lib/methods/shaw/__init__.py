"""Paper slice: heteroscedastic reconstruction uncertainty (Shaw et al., paper 3)."""
