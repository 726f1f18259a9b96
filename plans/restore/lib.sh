# Helpers shared by the restore steps. Sourced by each step script, never run.
#
# Every input comes from the environment (planrun exports each plan variable):
#   REPO (default .), PATH_SPEC (required: a path relative to the repository's top),
#   FROM_REF (default empty: the pre_sha of the last safe merge, read from
#   REPO/.state/safe_merge/last_merge.env), NEW_BRANCH (required), BASE (default main),
#   PLANRUN_RUN_ID (set by planrun).
# Inputs only ever reach git as single arguments, after --end-of-options or --, and the
# plan sets GIT_LITERAL_PATHSPECS=1 so PATH_SPEC is a path, never pathspec magic.

PIPELINE=restore
PATH_SPEC=${PATH_SPEC:-}
FROM_REF=${FROM_REF:-}
NEW_BRANCH=${NEW_BRANCH:-}
BASE=${BASE:-main}
. "$(dirname -- "$0")/../lib/git_pipeline.sh"
