"""`python -m disclosure_xlsx` runs the command line."""

from .cli import app

app(prog_name="disclosure-xlsx")
