"""FUSE view of a cas store (see issue: FUSE view)."""
