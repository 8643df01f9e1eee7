"""Kept so that ``python -m lenna_core.generate_dataset`` still works: it is ``lenna label``
(:mod:`lenna_core.cli.label`)."""

from lenna_core.cli.label import main

if __name__ == "__main__":
    main()
