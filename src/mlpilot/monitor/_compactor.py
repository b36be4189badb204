"""``python -m mlpilot.monitor._compactor DIR...``: compact the prediction log's closed segments in DIRs.

Run by `mlpilot.monitor._log_store.compact_in_child` for the log's background compaction, so that the
serving or streaming process does not parse and rewrite segments on its own GIL. Prints the
`CompactionResult` as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from mlpilot.monitor._log_store import CHILD_NICE, compact_dirs


def main(argv: list[str]) -> int:
    with contextlib.suppress(OSError):  # not allowed here: compact at the parent's priority
        os.nice(CHILD_NICE)
    result = compact_dirs([Path(a) for a in argv if Path(a).is_dir()])
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
