"""MAP · source records → profile facts: identity resolution, mapping files, profile values and
their history. Imports: definitions, lang, kernel."""
