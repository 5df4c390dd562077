"""The blob engine: bytes by content id (hashing, spooling, verified readers, the cache of remote
blobs, the backends that hold bytes, reference counts). Knows nothing of projects or items."""
