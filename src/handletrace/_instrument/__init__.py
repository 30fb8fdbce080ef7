"""Instrumentation: install()/uninstall(), the patch tables applied to the SDK, the wrappers,
access records, and the choice of the C or the pure-Python ``_Handle`` hooks (made in one
place, ``hooks.py``). Imports ``_core``, ``_sdk`` and wrapt."""
