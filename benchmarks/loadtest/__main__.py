"""``python -m benchmarks.loadtest [args]``: the same as ``python -m benchmarks load [args]``."""

from benchmarks.loadtest import main

raise SystemExit(main())
