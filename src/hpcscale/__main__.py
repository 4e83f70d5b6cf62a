from hpcscale.cli import entry

entry()
