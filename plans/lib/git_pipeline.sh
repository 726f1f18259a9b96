# Helpers shared by the git pipelines (safe_merge, restore). Sourced through each
# pipeline's lib.sh, which sets PIPELINE (its name: messages, .state/PIPELINE) and the
# defaults of its inputs first. Never run directly.
#
# Nothing here splices an input into a shell string: values only ever reach git as
# single arguments, after --end-of-options or -- where git accepts it.

REPO=${REPO:-.}
# An inherited GIT_DIR & co. would point git somewhere other than REPO.
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_COMMON_DIR GIT_OBJECT_DIRECTORY GIT_NAMESPACE

RUN_ID=${PLANRUN_RUN_ID:?PLANRUN_RUN_ID is not set: run this through planrun}

die() {
    printf '%s: %s\n' "$PIPELINE" "$*" >&2
    exit 1
}

case $RUN_ID in
    */* | .*) die "unusable run id '$RUN_ID'" ;;
esac

# check_branch_name LABEL NAME: NAME must be a valid branch name that git cannot
# mistake for an option.
check_branch_name() {
    case $2 in
        '') die "$1 is empty" ;;
        -*) die "$1 '$2' starts with '-': refusing a name git could read as an option" ;;
    esac
    _normalized=$(git check-ref-format --branch "$2" 2>/dev/null) ||
        die "$1 '$2' is not a valid branch name (git check-ref-format --branch)"
    [ "$_normalized" = "$2" ] || die "$1 '$2' is not a plain branch name"
}

# load_paths: set TOP (the work tree REPO is in), STATE_DIR and RUN_DIR.
load_paths() {
    TOP=$(git -C "$REPO" rev-parse --show-toplevel) || die "REPO '$REPO' is not a git work tree"
    STATE_DIR=$TOP/.state/$PIPELINE
    RUN_DIR=$STATE_DIR/runs/$RUN_ID
}

# branch_sha NAME: the commit refs/heads/NAME points at (empty if there is none).
branch_sha() {
    git -C "$TOP" rev-parse --verify --quiet --end-of-options "refs/heads/$1^{commit}" || true
}

# checked_out_at NAME: the work trees that have branch NAME checked out (one per line).
# Moving such a branch with update-ref would leave that checkout out of sync.
checked_out_at() {
    git -C "$TOP" worktree list --porcelain | WANT="branch refs/heads/$1" awk '
        /^worktree / { wt = substr($0, 10) }
        $0 == ENVIRON["WANT"] { print wt }'
}

# ignore_state_dir: TOP/.state ignores itself (a .gitignore of "*", like pytest's cache),
# so `git status` stays clean. Written once, never over an existing file (set -C: O_EXCL).
ignore_state_dir() {
    [ -n "${TOP:-}" ] || return 0
    [ -e "$TOP/.state/.gitignore" ] && return 0
    mkdir -p -- "$TOP/.state"
    (set -C && printf '# written by planrun pipelines: ignore everything here\n*\n' \
        >"$TOP/.state/.gitignore") 2>/dev/null || true
}

# write_state FILE: write stdin to FILE atomically (temp file in the same directory,
# flushed to disk, renamed over FILE): readers see the old content or the new, never half.
write_state() {
    ignore_state_dir
    _dir=$(dirname -- "$1")
    mkdir -p -- "$_dir"
    _tmp=$(mktemp "$_dir/.tmp.XXXXXX")
    if ! { cat >"$_tmp" && sync -- "$_tmp" && mv -f -- "$_tmp" "$1"; }; then
        rm -f -- "$_tmp"
        die "cannot write $1"
    fi
    sync -- "$_dir"
}

# read_state FILE KEY: the value of KEY=... in a state file (never sourced: it is data).
read_state() {
    [ -f "$1" ] || die "missing state file $1"
    _value=$(sed -n "s/^$2=//p" "$1" | tail -n 1)
    [ -n "$_value" ] || die "no '$2' in $1"
    printf '%s\n' "$_value"
}

# worktree_path: this run's work tree (under the temp dir worktree.sh made).
worktree_path() {
    _tmp_dir=$(read_state "$RUN_DIR/worktree.env" tmp_dir) && printf '%s/worktree\n' "$_tmp_dir"
}

now() {
    date -u +%Y-%m-%dT%H:%M:%SZ
}

# The prefix of this pipeline's temp dirs (safe_merge -> planrun-safe-merge.XXXXXX).
WORKTREE_PREFIX=planrun-$(printf '%s' "$PIPELINE" | tr _ -)

# create_run_worktree SHA: a detached work tree at SHA in a fresh temp dir, recorded in
# RUN_DIR/worktree.env for the later steps and cleanup. Needs load_paths. A resumed run
# (the plan marks this step "resume": "ephemeral") first removes what an earlier attempt
# left, if cleanup did not.
create_run_worktree() {
    if [ -f "$RUN_DIR/worktree.env" ]; then
        remove_recorded_worktree
    fi
    _tmp=$(mktemp -d -- "${TMPDIR:-/tmp}/$WORKTREE_PREFIX.XXXXXX")
    _tmp=$(cd -- "$_tmp" && pwd -P)
    printf 'tmp_dir=%s\n' "$_tmp" | write_state "$RUN_DIR/worktree.env"
    git -C "$TOP" worktree add --detach -- "$(worktree_path)" "$1"
}

# remove_run_worktree: remove this run's work tree and its temp dir, if the run got that
# far; runs whatever happened. The user's checkout and the state files stay.
remove_run_worktree() {
    if ! TOP=$(git -C "$REPO" rev-parse --show-toplevel 2>/dev/null); then
        echo "REPO '$REPO' is not a git work tree: nothing to clean"
        return 0
    fi
    load_paths
    if [ ! -f "$RUN_DIR/worktree.env" ]; then
        echo "no work tree was created"
        return 0
    fi
    remove_recorded_worktree
}

# remove_recorded_worktree: remove the work tree and temp dir RUN_DIR/worktree.env names
# (if still there). Needs load_paths.
remove_recorded_worktree() {
    _tmp=$(read_state "$RUN_DIR/worktree.env" tmp_dir)
    case $_tmp in
        /*/"$WORKTREE_PREFIX".*) ;;
        *) die "unexpected temp dir '$_tmp' in $RUN_DIR/worktree.env: not removing it" ;;
    esac
    if [ -e "$_tmp/worktree" ]; then
        git -C "$TOP" worktree remove --force -- "$_tmp/worktree"
    fi
    rm -rf -- "$_tmp"
    git -C "$TOP" worktree prune
    echo "removed $_tmp/worktree"
}
