"""`python -m gpuwatch`: the same entry point as the `gpuwatch` command."""

from gpuwatch.cli import main

raise SystemExit(main())
