"""The uploader: every changed file of an open session into the bucket, and a verified final transfer."""
