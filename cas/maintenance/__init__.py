"""Maintenance over a whole store: garbage collection, checking and repair, statistics and
usage, rebuilding the index. The layers above the store: the store never calls into them."""
