"""MAP · source records → profile facts.

Identity resolution, mapping files, profile values and their history. Imports: definitions, lang,
kernel.
"""
