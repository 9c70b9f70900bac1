"""tileset."""
