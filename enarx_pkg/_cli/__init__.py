"""The command line: a thin typer layer over the library. Nothing here is imported by the library."""
