"""Problem records, SymPy-backed generators, dataset loaders and the Grok-4 resolver."""
