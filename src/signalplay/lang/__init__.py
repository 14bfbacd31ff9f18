"""The RevOps files' small languages.

YAML with positions, expressions (row and column-wise), transforms, templates and business
calendars. Imports: the kernel only.
"""
