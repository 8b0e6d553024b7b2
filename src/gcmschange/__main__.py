"""`python -m gcmschange`: the same CLI as the `gcmschange` command."""

from gcmschange.cli import main

raise SystemExit(main())
