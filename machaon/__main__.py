import sys

from machaon.cli.main import main

sys.exit(main())
