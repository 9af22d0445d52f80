"""``python -m cdk_replication.cli``: the same as the ``cdk-replication`` console script."""

import sys

from cdk_replication.cli.main import main

sys.exit(main())
