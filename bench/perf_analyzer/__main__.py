from bench.perf_analyzer.cli import main

raise SystemExit(main())
