import sys

from bench.serve.cli import main

sys.exit(main())
