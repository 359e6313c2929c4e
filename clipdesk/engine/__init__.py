"""Model registry and the CLIP engine (open_clip, loaded lazily)."""
