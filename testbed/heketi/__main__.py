"""`python -m testbed.heketi --listen 127.0.0.1:8080 --admin-key KEY`: the Heketi test server."""

import sys

from testbed.heketi.server import main

sys.exit(main())
