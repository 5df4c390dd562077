"""Versions and sharing: snapshots of a project as trees of blobs, their history, and moving
them (and blobs) to and from the S3 remote."""
