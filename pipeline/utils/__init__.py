"""Small shared helpers (progress bars, atomic files, hashing, shape checks)."""
