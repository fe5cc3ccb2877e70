import sys

from edge_isp.cli import main

sys.exit(main())
