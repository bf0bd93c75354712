"""`python -m grok_lightning.sweep` as a file, for launchers that take a script path
(`fabric run scripts/sweep.py sweep=parity_phase`)."""

import sys

from grok_lightning.sweep import main

if __name__ == "__main__":
    sys.exit(main())
