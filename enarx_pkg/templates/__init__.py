"""Hello-world sources written by ``enarx-pkg init``, one folder per language.

Files end in ``.tmpl`` (so linters leave them alone); ``__NAME__`` becomes the package name and
``__GREETING_LEN__`` the byte length of the greeting (the WAT program needs it).
"""
