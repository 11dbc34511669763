"""The Kubernetes API adapter shared by the controller, the audit and migrate.

`api` sends requests on plain JSON dicts with typed errors, `secrets` reads
Heketi keys from Secrets, `client` builds the authenticated `ApiClient` from a
kubeconfig or the in-cluster service account. None of it knows about claims.
"""
