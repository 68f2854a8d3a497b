from charging_engine.cli import main

raise SystemExit(main())
