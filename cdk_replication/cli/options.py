"""Settings shared by the commands that scan: their defaults, and the settings of a verify run and its repair.

:class:`VerifyOptions` lives here rather than in verify.py because the repair procedure
(:mod:`cdk_replication.cli.repair`) reads it, and ``backfill``'s one-way check runs that procedure too: both
import this module instead of the ``verify`` command, which itself imports the repair.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk_replication._lambda.replicator import contract
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.pacing import DEFAULT_MAX_ATTEMPTS

#: Parallel scan segments when ``--segments`` is not given.
DEFAULT_SEGMENTS = 4
#: Write (or read) threads shared by all segments when ``--workers`` is not given.
DEFAULT_WORKERS = 16
#: Metadata prefix (``--metadata-prefix``) when not given: the replicator's default.
DEFAULT_METADATA_PREFIX = contract.DEFAULT_METADATA_PREFIX
#: Rounds of consistent re-reads of each difference before it is reported (``--recheck-rounds``).
DEFAULT_RECHECK_ROUNDS = 3
#: Pause between two re-read rounds, in seconds (``--recheck-pause``).
DEFAULT_RECHECK_PAUSE = 1.0


@dataclass
class VerifyOptions:
    """Settings of one verify run.

    Attributes:
        segments: parallel scan segments per table, default 4.
        workers: threads for the consistent re-reads and the repair, default 16.
        rate: items read per second per scan (and repairs per second); ``None`` (default) is unlimited.
        metadata_prefix: attributes starting with it are ignored, default ``_rep_``; ``""`` ignores none.
        conflict: multi-active ordering for the repair; ``None`` (default) is the one-way repair.
        repair: write the fixes; default ``False`` (report only).
        dry_run: with ``repair``, only say what would be written.
        max_attempts: attempts per request before a throttling error is final, default 10.
        recheck_rounds: rounds of consistent re-reads of each difference, default 3; a difference is reported
            only if every round still sees it (replication lag settles in between).
        recheck_pause: seconds between two rounds, default 1.0.
    """

    segments: int = DEFAULT_SEGMENTS
    workers: int = DEFAULT_WORKERS
    rate: float | None = None
    metadata_prefix: str = DEFAULT_METADATA_PREFIX
    conflict: LastWriterWins | None = None
    repair: bool = False
    dry_run: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    recheck_rounds: int = DEFAULT_RECHECK_ROUNDS
    recheck_pause: float = DEFAULT_RECHECK_PAUSE
