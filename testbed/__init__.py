"""Test servers and the local demo: stand-ins for Heketi v10.4.1 and the Kubernetes API.

Not part of the shipped package (the wheel and the image hold only `provisioner/`):
`make test`, `make demo` and `make bench` run them from the source tree.
"""
