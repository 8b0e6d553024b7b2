from gcmschange.cli import main

raise SystemExit(main())
