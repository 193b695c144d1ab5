"""The `segopt` command line: thin commands over segopt_core and the flows."""
