#!/bin/sh
# Runs only when a step after record failed. If TARGET points at this run's merge
# commit, move it back to the recorded sha (update-ref checks the old value). The remote
# is never rewritten. Writes runs/RUN_ID/result.env with result=failed, and what it did as
# its "summary" output (shown in the run summary).
set -eu
. "$(dirname -- "$0")/lib.sh"
load_paths

pre=$(read_state "$RUN_DIR/record.env" pre_sha)
merge=$(sed -n 's/^merge_sha=//p' "$RUN_DIR/merge.env" 2>/dev/null || true)
now_sha=$(branch_sha "$TARGET")

if [ "$now_sha" = "$pre" ]; then
    rollback=unchanged
    said="$TARGET was not moved (still at $pre): nothing to restore; $REMOTE untouched"
elif [ -n "$merge" ] && [ "$now_sha" = "$merge" ]; then
    where=$(checked_out_at "$TARGET")
    [ -z "$where" ] || die "'$TARGET' is checked out in $where: restore it to $pre by hand"
    git -C "$TOP" update-ref -m "safe_merge $RUN_ID: rollback" --end-of-options \
        "refs/heads/$TARGET" "$pre" "$merge"
    rollback=restored
    said="$TARGET restored: $merge -> $pre; $REMOTE untouched"
else
    die "'$TARGET' is at ${now_sha:-nothing}, not $pre nor this run's merge: leaving it alone"
fi

write_state "$RUN_DIR/result.env" <<STATE
result=failed
rollback=$rollback
run_id=$RUN_ID
repo=$TOP
target=$TARGET
branch=$BRANCH
remote=$REMOTE
pre_sha=$pre
merge_sha=${merge:-none}
finished_at=$(now)
STATE
echo "$said"
# The run summary prints a step's "summary" output: say there what rollback did.
printf 'summary=%s\n' "$said" >>"$PLANRUN_OUTPUT"
