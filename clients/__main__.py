"""`python -m clients`: the `facet` command line (see `python -m clients --help`)."""

from clients.cli import main

raise SystemExit(main())
