import sys

from veil_research.cli import main

sys.exit(main())
