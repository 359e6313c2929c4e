"""Self-contained panels the main window arranges (search bar, photo details)."""
