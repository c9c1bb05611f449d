"""watch widgets package."""
