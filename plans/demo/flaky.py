"""Fail the first N attempts of a step, then succeed (planrun's demo of retries).

planrun gives every attempt PLANRUN_ATTEMPT (1, 2, ...), so no state file is needed.
"""

import os
import sys

failures = int(sys.argv[1]) if len(sys.argv) > 1 else 1
attempt = int(os.environ.get("PLANRUN_ATTEMPT", "1"))
if attempt <= failures:
    print(f"attempt {attempt}: upload failed (simulated network error)", file=sys.stderr)
    sys.exit(75)
print(f"attempt {attempt}: uploaded")
