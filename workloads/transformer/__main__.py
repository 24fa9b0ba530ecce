import sys

from workloads.transformer.train import main

sys.exit(main())
