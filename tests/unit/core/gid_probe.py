"""Whether a GID is free, seen as a caller of `GidPool` sees it (the pool has no query)."""

from provisioner.core.gids import GidPool, GidRangeExhausted, Holder


def gid_is_free(pool: GidPool, gid: int) -> bool:
    """A one-GID range can hand `gid` out (the probe gives it back at once)."""
    probe: Holder = ("probe", str(gid))
    try:
        pool.allocate(probe, gid_min=gid, gid_max=gid)
    except GidRangeExhausted:
        return False
    pool.drop(probe)
    return True
