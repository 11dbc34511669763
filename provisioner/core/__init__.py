"""The domain core every command shares: StorageClass parameters → typed parameters,
idempotent create / delete / expand / clone of Heketi volumes, GIDs, and the names and
annotations of what we create. Knows nothing of gRPC and reads no Kubernetes objects
beyond the keys it defines."""
