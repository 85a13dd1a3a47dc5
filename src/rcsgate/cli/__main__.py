"""``python -m rcsgate.cli``."""

from rcsgate.cli import main

if __name__ == "__main__":
    main()
