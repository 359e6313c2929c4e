"""Auto-labeling by description: labels scored by their visual descriptors."""
