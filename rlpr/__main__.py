import sys

from rlpr.cli import main

sys.exit(main())
