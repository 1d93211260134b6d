"""Where the relay reaches past a dependency's public API, one module per library.

Each module lists what it touches in ``INTERNALS``; ``tests/contract/test_adapters.py`` checks
every entry against the installed release and fails with its name when a release changes it.
"""
