import sys

from workloads.allreduce.bench import main

sys.exit(main())
