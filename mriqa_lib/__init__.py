"""mriqa: reproducible automatic MRI image-quality assessment (five papers, one pipeline)."""

__version__ = "0.1.0"
