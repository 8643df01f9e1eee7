"""Layer 4, the command line: ``lenna`` (``main``) and its subcommands, one module each
(``label``, ``transfer``, ``search``, ``merge``). Nothing in lenna_core imports these modules
but ``main``.
"""
