"""`python -m segment_pipeline.generator --out DIR [...]`."""

from segment_pipeline.generator.dataset import main

raise SystemExit(main())
