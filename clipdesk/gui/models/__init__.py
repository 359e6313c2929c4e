"""Qt item models (the GUI side of the Anki-style lazy browser)."""
