"""`python -m trio_tls` is the `trio-tls` command."""

import sys

from .cli import main

sys.exit(main())
