#!/bin/sh
# Check the inputs and resolve them once; only when every check passes, write
# runs/RUN_ID/inputs.env (the shas every later step uses).
#   NEW_BRANCH, BASE: valid branch names (not options); BASE exists, NEW_BRANCH does not;
#   FROM_REF: not an option, resolves to a commit (empty: last safe merge's pre_sha);
#   PATH_SPEC: relative, no '..', exists in FROM_REF and differs from BASE there.
set -eu
. "$(dirname -- "$0")/lib.sh"

check_branch_name NEW_BRANCH "$NEW_BRANCH"
check_branch_name BASE "$BASE"
case $PATH_SPEC in
    '') die "PATH_SPEC is required" ;;
    /*) die "PATH_SPEC '$PATH_SPEC' must be relative to the repository's top" ;;
    .. | ../* | */.. | */../*) die "PATH_SPEC '$PATH_SPEC' must not contain '..'" ;;
esac
path=${PATH_SPEC%/}
case $FROM_REF in
    -*) die "FROM_REF '$FROM_REF' starts with '-': refusing a name git could read as an option" ;;
esac

[ "$(git -C "$REPO" rev-parse --is-inside-work-tree 2>/dev/null)" = true ] ||
    die "REPO '$REPO' is not a git work tree"
load_paths

from_ref=$FROM_REF
if [ -z "$from_ref" ]; then
    last=$TOP/.state/safe_merge/last_merge.env
    [ -f "$last" ] || die "FROM_REF not given and no safe merge recorded in $last"
    from_ref=$(read_state "$last" pre_sha)
    echo "FROM_REF: pre-merge sha of the last safe merge ($last)"
fi
from=$(git -C "$TOP" rev-parse --verify --quiet --end-of-options "$from_ref^{commit}") ||
    die "FROM_REF '$from_ref' is not a commit in $TOP"
base=$(git -C "$TOP" rev-parse --verify --quiet --end-of-options "refs/heads/$BASE^{commit}") ||
    die "branch '$BASE' does not exist in $TOP"
if git -C "$TOP" rev-parse --verify --quiet --end-of-options "refs/heads/$NEW_BRANCH" >/dev/null; then
    die "branch '$NEW_BRANCH' already exists: choose another NEW_BRANCH"
fi
git -C "$TOP" cat-file -e "$from:$path" 2>/dev/null ||
    die "'$path' does not exist in $from_ref ($from)"
if git -C "$TOP" diff --quiet "$base" "$from" -- "$path"; then
    die "'$path' is the same in '$BASE' and $from_ref: nothing to restore"
fi

write_state "$RUN_DIR/inputs.env" <<STATE
run_id=$RUN_ID
repo=$TOP
path=$path
from_ref=$from_ref
from_sha=$from
base=$BASE
base_sha=$base
new_branch=$NEW_BRANCH
STATE
echo "ok: restore '$path' from $from onto new branch '$NEW_BRANCH' (from $BASE at $base)"
