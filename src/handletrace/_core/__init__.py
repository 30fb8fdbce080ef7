"""The core: configuration, the one state object, the registry of handle records, creation
stacks, redaction and snapshots. Standard library only; knows nothing of the SDK."""
