"""An in-process Kubernetes API server for tests, demos and benchmarks.

The entry point is `testbed.kube_server.KubeTestServer`; the modules
here are its parts: resource registry, store, selectors, patches, validation,
HTTP handling and the PV binder.
"""
