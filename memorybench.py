"""``python -m memorybench``: the same command line as the ``memorybench`` script."""

import sys

from runners.cli import main

if __name__ == "__main__":
    sys.exit(main())
