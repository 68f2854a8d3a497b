from charging_server.cli import main

raise SystemExit(main())
