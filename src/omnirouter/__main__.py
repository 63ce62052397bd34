from omnirouter.cli import main

raise SystemExit(main())
