"""Everything that knows the Azure Speech SDK's internals: module names, which classes are
the SDK's, the release functions and the kinds they name, event signals, who owns a handle,
and the SDK's own native handle table. Imports ``_core`` only (the SDK is never imported
from here: a module is looked up in ``sys.modules`` when the program has imported it)."""
