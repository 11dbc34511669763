"""glusterfs-provisioner: a CSI-style dynamic provisioner for GlusterFS managed by Heketi."""

from importlib import metadata

try:
    __version__ = metadata.version("glusterfs-provisioner")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
