import sys

from grok_lightning.sweep.cli import main

sys.exit(main())
