"""A Heketi server for tests, demos and benchmarks, faithful to Heketi v10.4.1's REST contract.

The entry point is `testbed.heketi.server.HeketiTestServer` (in a thread) or
`python -m testbed.heketi` (a process); the modules here are its parts.
"""
