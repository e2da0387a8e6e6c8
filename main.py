"""DynaStream: `python main.py [COMMAND ...]`. With no command it opens the GUI on the demo."""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
