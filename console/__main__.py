"""`python -m console`: the same as the `quarterdeck` command."""

import sys

from console.launcher import main

sys.exit(main())
