import sys

from labedge.cli import main

sys.exit(main())
