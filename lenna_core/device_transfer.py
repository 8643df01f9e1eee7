"""Kept so that ``python -m lenna_core.device_transfer`` still works: it is ``lenna transfer``
(:mod:`lenna_core.cli.transfer`)."""

from lenna_core.cli.transfer import main

if __name__ == "__main__":
    main()
