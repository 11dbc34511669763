"""An in-process Kubernetes API server for tests, demos and benchmarks.

The entry point is `testbed.kube.server.KubeTestServer` (in a thread) or
`python -m testbed.kube` (a process); the modules here are its parts:
resource registry, store, selectors, patches, validation, HTTP handling and
the PV binder.
"""
