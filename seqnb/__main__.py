import sys

from seqnb.cli import main

sys.exit(main())
