# Helpers shared by the safe_merge steps. Sourced by each step script, never run.
#
# Every input comes from the environment (planrun exports each plan variable):
#   REPO (default .), BRANCH (required), TARGET (default main), REMOTE (default origin),
#   TEST_CMD (default true), PLANRUN_RUN_ID (set by planrun).

PIPELINE=safe_merge
TARGET=${TARGET:-main}
REMOTE=${REMOTE:-origin}
TEST_CMD=${TEST_CMD:-true}
BRANCH=${BRANCH:-}
. "$(dirname -- "$0")/../lib/git_pipeline.sh"
