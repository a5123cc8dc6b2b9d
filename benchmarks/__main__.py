"""`python -m benchmarks ...`: the same as `ocr-gateway bench ...`."""

from benchmarks.cli import main

raise SystemExit(main())
