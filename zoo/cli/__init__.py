"""zoo's command line: thin Typer commands over the Python API (`zoo --help`)."""
