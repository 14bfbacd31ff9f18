"""RevOps files: YAML with positions, schemas, and loading with file:line errors."""
