"""Qt item views."""
