"""`python -m testbed.kube --listen 127.0.0.1:8001`: the Kubernetes API test server."""

import sys

from testbed.kube.server import main

sys.exit(main())
