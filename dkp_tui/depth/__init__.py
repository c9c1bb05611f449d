"""depth package."""
