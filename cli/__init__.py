"""The paperkb command line: a thin typer layer over kb and repro."""
