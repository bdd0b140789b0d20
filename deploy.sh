#!/usr/bin/env bash
# Deploys the saga orchestrator to one Google Cloud project with gcloud, idempotently; checks a project
# first (--check); removes what it deployed (--destroy).
#
# Before anything changes, the checks read the project and report, one line each with the command that
# fixes it, what a deploy needs and what is missing or wrong: the APIs, the build service account and
# its roles, the two custom roles, the bucket of start claims and the starter's grant on it, the Pub/Sub
# service agent's token-creator grant, settings that cannot work on Google Cloud (a loopback-only
# SAGA_ALLOWED_HOSTS) or that exceed a Cloud Tasks limit.
# A deploy stops before changing anything when a check finds an error it would not fix itself.
#
# What a deploy provisions, in order: the APIs; the service accounts (one per identity, and one that
# builds the functions); the Artifact Registry repository of the function images; the topics; the Cloud
# Tasks queue with its retry settings; the secrets (their existence, never a value); the Cloud Storage
# bucket where start_saga claims each saga id; the custom roles (workflows.callbacks.send for the
# executor, the four object permissions of a claim for the starter); the least-privilege IAM bindings;
# the functions step_executor and saga_completion; the workflow; the function saga_sweeper with the Cloud
# Scheduler job that calls it; the function start_saga with its Eventarc trigger (last, so that no request
# is consumed before everything it needs exists). --destroy removes the same in the reverse order, but
# keeps the bucket of start claims (and the secrets): its claims are the memory of which saga ids already
# started.
#
# Idempotent: every resource is checked (describe / get-iam-policy) before it is created, and only
# changed when the desired state differs. Functions and the workflow carry a label with a digest of what
# was deployed (source + settings); a second run with the same code and settings deploys nothing.
#
# Settings come from deployment.env (the same file the local runner reads); an environment variable of
# the same name (set and not empty) overrides a key; --project / --region override SAGA_PROJECT_ID /
# SAGA_LOCATION.
# Secret values are never read, printed or passed anywhere by this script.
set -euo pipefail

if ((BASH_VERSINFO[0] < 4)); then
  printf 'deploy.sh: error: bash 4 or newer is needed (this is bash %s; on macOS: brew install bash)\n' \
    "$BASH_VERSION" >&2
  exit 1
fi

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly APIS=(
  workflows.googleapis.com workflowexecutions.googleapis.com cloudtasks.googleapis.com
  pubsub.googleapis.com secretmanager.googleapis.com cloudfunctions.googleapis.com run.googleapis.com
  eventarc.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com
  logging.googleapis.com iam.googleapis.com cloudscheduler.googleapis.com storage.googleapis.com
)
# Keys that must have a value. SAGA_SECRETS may be empty; SAGA_TRIGGER_SA is optional (see below);
# SAGA_START_BUCKET may be empty (then <project id>-saga-starts, as the functions name it).
readonly REQUIRED_KEYS=(
  SAGA_PROJECT_ID SAGA_LOCATION SAGA_REQUEST_TOPIC SAGA_RESULT_TOPIC SAGA_TASK_QUEUE SAGA_WORKFLOW
  SAGA_QUEUE_MAX_ATTEMPTS SAGA_QUEUE_MIN_BACKOFF_SECONDS SAGA_QUEUE_MAX_BACKOFF_SECONDS
  SAGA_QUEUE_MAX_DOUBLINGS SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES
  SAGA_DISPATCH_DEADLINE_SECONDS SAGA_STARTER_SA SAGA_WORKFLOW_SA SAGA_EXECUTOR_SA SAGA_COMPLETION_SA
  SAGA_TASKS_INVOKER_SA SAGA_SWEEPER_SA SAGA_SCHEDULER_SA DEPLOY_BUILD_SA DEPLOY_CALLBACK_ROLE_ID
  DEPLOY_START_CLAIMS_ROLE_ID DEPLOY_RUNTIME
  DEPLOY_FUNCTION_MEMORY DEPLOY_FUNCTION_TIMEOUT_SECONDS DEPLOY_SWEEP_SCHEDULE
  DEPLOY_STEP_EXECUTOR_CONCURRENCY DEPLOY_STEP_EXECUTOR_MAX_INSTANCES
  DEPLOY_SAGA_COMPLETION_CONCURRENCY DEPLOY_SAGA_COMPLETION_MAX_INSTANCES
  DEPLOY_SAGA_SWEEPER_CONCURRENCY DEPLOY_SAGA_SWEEPER_MAX_INSTANCES
  DEPLOY_START_SAGA_CONCURRENCY DEPLOY_START_SAGA_MAX_INSTANCES
)
# Keys read from the environment even when the settings file does not name them.
readonly OPTIONAL_KEYS=(SAGA_TRIGGER_SA SAGA_SECRETS SAGA_START_BUCKET)
# Cloud Tasks stops retrying when BOTH max attempts are used AND this much time has passed; 0 = no time
# limit, so SAGA_QUEUE_MAX_ATTEMPTS alone bounds the retries (the step executor enforces each step's own,
# smaller max_attempts exactly).
readonly QUEUE_MAX_RETRY_DURATION=0s
# Cloud Tasks limits per queue (https://cloud.google.com/tasks/docs/quotas).
readonly QUEUE_MAX_DISPATCHES_PER_SECOND_LIMIT=500
readonly QUEUE_MAX_CONCURRENT_DISPATCHES_LIMIT=5000
readonly LABEL=saga_deploy_hash
# What deploy.sh creates carries this mark, so that --destroy removes what it created and nothing else:
# a label on topics, the description of service accounts.
readonly CREATED_LABEL=saga_deploy=created
readonly CREATED_DESCRIPTION="Created by deploy.sh of the saga orchestrator"
# The permissions of the step executor's custom role: what a callback needs, and reading an execution's
# state (a forward run stops when its execution has ended: shared/saga_orchestrator/forward.py)
# (https://cloud.google.com/workflows/docs/access-control).
readonly CALLBACK_PERMISSION=workflows.callbacks.send,workflows.executions.get
# The permissions of the starter's custom role, on the bucket of start claims only: what a claim takes
# (shared/saga_orchestrator/starts.py) and nothing else. Each is what one JSON API method needs
# (https://cloud.google.com/storage/docs/json_api/v1/objects): insert with ifGenerationMatch=0 (the
# claim), get (a loser reads it), patch (the execution recorded, a takeover) and delete (a claim released
# when Workflows refused the start). No list, no bucket permission: no predefined role is this narrow
# (roles/storage.objectUser adds list, restore and more;
# https://cloud.google.com/storage/docs/access-control/iam-roles).
readonly START_CLAIMS_PERMISSIONS=storage.objects.create,storage.objects.delete,storage.objects.get,storage.objects.update
# The Artifact Registry repository the function images are pushed to (--docker-repository), so that the
# build account may write to this repository only.
readonly REPOSITORY=saga-functions
# The functions in the order they are deployed; each has DEPLOY_<NAME>_CONCURRENCY and _MAX_INSTANCES.
readonly FUNCTIONS=(step_executor saga_completion saga_sweeper start_saga)

usage() {
  cat <<'EOF'
Usage: bash deploy.sh [--project ID] [--region REGION] [--settings FILE] [--check | --destroy]
                      [--dry-run] [--help]

Deploys the saga orchestrator to a Google Cloud project with gcloud: APIs, service accounts with
least-privilege IAM bindings, the topics, the Cloud Tasks queue, the secrets (existence only), the
bucket of start claims, the four functions (with the Eventarc trigger of start_saga), the workflow and
the Cloud Scheduler job of the sweeper. It checks the project first and changes nothing when a check
fails. A second run changes nothing unless the settings or the code changed.

  --project ID      Google Cloud project (overrides SAGA_PROJECT_ID)
  --region REGION   region of the functions, queue and workflow (overrides SAGA_LOCATION)
  --settings FILE   settings file (default: deployment.env next to this script)
  --check           only check the project: one line per finding, with the command that fixes it;
                    exits 1 when a deploy would fail (changes nothing)
  --destroy         remove what deploy.sh created, in the reverse order (the bucket of start claims,
                    secrets and APIs are kept)
  --dry-run         print every command it would run and run none (gcloud is not called)
  -h, --help        show this text

Settings are KEY=VALUE lines; an environment variable of the same name (set and not empty) overrides a
key. Every SAGA_* key reaches the four functions as an environment variable.
EOF
}

die() {
  printf 'deploy.sh: error: %s\n' "$*" >&2
  exit 1
}

warn() { printf 'deploy.sh: warning: %s\n' "$*" >&2; }
say() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------------------------------------------
# arguments and settings

DRY_RUN=0
MODE=deploy
OPT_PROJECT=""
OPT_REGION=""
SETTINGS_FILE="$SCRIPT_DIR/deployment.env"

need_value() { [[ $# -ge 2 && -n $2 ]] || { usage >&2; die "$1 needs a value"; }; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --project) need_value "$@"; OPT_PROJECT=$2; shift 2 ;;
    --project=*) OPT_PROJECT=${1#*=}; shift ;;
    --region) need_value "$@"; OPT_REGION=$2; shift 2 ;;
    --region=*) OPT_REGION=${1#*=}; shift ;;
    --settings) need_value "$@"; SETTINGS_FILE=$2; shift 2 ;;
    --settings=*) SETTINGS_FILE=${1#*=}; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --check | --destroy)
      if [[ $MODE != deploy && $MODE != "${1#--}" ]]; then
        usage >&2; printf 'deploy.sh: error: --check and --destroy exclude each other\n' >&2; exit 2
      fi
      MODE=${1#--}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; printf 'deploy.sh: error: unknown argument: %s\n' "$1" >&2; exit 2 ;;
  esac
done

declare -A CFG=()
CFG_KEYS=()

set_cfg() {
  if [[ -z ${CFG[$1]+x} ]]; then CFG_KEYS+=("$1"); fi
  CFG[$1]=$2
}

# KEY=VALUE lines; blank lines and '#' comments are skipped; no quotes, no expansion (the file is never
# sourced, so a value cannot run anything).
load_settings() {
  local file=$1 line key value n=0
  [[ -f $file ]] || die "settings file not found: $file"
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=(.*)$ ]] ||
      die "$file:$n: not a KEY=VALUE line: $line"
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    value=${value#"${value%%[![:space:]]*}"}
    value=${value%"${value##*[![:space:]]}"}
    set_cfg "$key" "$value"
  done <"$file"
  # The environment overrides the file (a variable that is set and not empty).
  for key in "${CFG_KEYS[@]}" "${OPTIONAL_KEYS[@]}"; do
    if [[ -n ${!key:-} ]]; then set_cfg "$key" "${!key}"; fi
  done
}

load_settings "$SETTINGS_FILE"
if [[ -n $OPT_PROJECT ]]; then set_cfg SAGA_PROJECT_ID "$OPT_PROJECT"; fi
if [[ -n $OPT_REGION ]]; then set_cfg SAGA_LOCATION "$OPT_REGION"; fi

validate_settings() {
  local key missing=() bad=() name
  local project=${CFG[SAGA_PROJECT_ID]:-}
  if [[ -z $project ]]; then
    die "no Google Cloud project: pass --project ID, or set SAGA_PROJECT_ID in $SETTINGS_FILE or the environment"
  fi
  if [[ $project == local-project ]]; then
    die "SAGA_PROJECT_ID is 'local-project', the local cloud's placeholder: pass --project ID (your Google Cloud project)"
  fi
  [[ $project =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
    die "SAGA_PROJECT_ID '$project' is not a project id (6-30 characters: lowercase letters, digits, hyphens)"
  for key in "${REQUIRED_KEYS[@]}"; do
    [[ -n ${CFG[$key]:-} ]] || missing+=("$key")
  done
  ((${#missing[@]} == 0)) || die "missing settings (in $SETTINGS_FILE or the environment): ${missing[*]}"
  [[ ${CFG[SAGA_QUEUE_MAX_ATTEMPTS]} =~ ^(-1|[1-9][0-9]*)$ ]] ||
    bad+=("SAGA_QUEUE_MAX_ATTEMPTS must be -1 or a positive integer, got '${CFG[SAGA_QUEUE_MAX_ATTEMPTS]}'")
  for key in SAGA_QUEUE_MAX_DOUBLINGS SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES DEPLOY_FUNCTION_TIMEOUT_SECONDS; do
    [[ ${CFG[$key]} =~ ^[0-9]+$ ]] || bad+=("$key must be a whole number, got '${CFG[$key]}'")
  done
  for key in SAGA_QUEUE_MIN_BACKOFF_SECONDS SAGA_QUEUE_MAX_BACKOFF_SECONDS SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND \
    SAGA_DISPATCH_DEADLINE_SECONDS; do
    [[ ${CFG[$key]} =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad+=("$key must be a number, got '${CFG[$key]}'")
  done
  for key in SAGA_STARTER_SA SAGA_WORKFLOW_SA SAGA_EXECUTOR_SA SAGA_COMPLETION_SA SAGA_TASKS_INVOKER_SA \
    SAGA_TRIGGER_SA SAGA_SWEEPER_SA SAGA_SCHEDULER_SA; do
    [[ -z ${CFG[$key]:-} || ${CFG[$key]} =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] ||
      bad+=("$key must be a service account id (6-30 characters: lowercase letters, digits, hyphens), got '${CFG[$key]}'")
  done
  [[ ${CFG[DEPLOY_BUILD_SA]} =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ||
    ${CFG[DEPLOY_BUILD_SA]} =~ ^[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.gserviceaccount\.com$ ]] ||
    bad+=("DEPLOY_BUILD_SA must be a service account id (deploy.sh creates it) or the email of an existing service account, got '${CFG[DEPLOY_BUILD_SA]}'")
  # A custom role id: letters, digits, '_' and '.', at most 64 (https://cloud.google.com/iam/docs/creating-custom-roles).
  for key in DEPLOY_CALLBACK_ROLE_ID DEPLOY_START_CLAIMS_ROLE_ID; do
    [[ ${CFG[$key]} =~ ^[A-Za-z0-9_.]{3,64}$ ]] || bad+=("$key must be 3-64 letters, digits, '_' or '.', got '${CFG[$key]}'")
  done
  [[ ${CFG[DEPLOY_CALLBACK_ROLE_ID]} != "${CFG[DEPLOY_START_CLAIMS_ROLE_ID]}" ]] ||
    bad+=("DEPLOY_CALLBACK_ROLE_ID and DEPLOY_START_CLAIMS_ROLE_ID name two roles with different permissions, so they must differ (both are '${CFG[DEPLOY_CALLBACK_ROLE_ID]}')")
  # A bucket name (https://cloud.google.com/storage/docs/buckets#naming): 3-63 lowercase letters, digits,
  # '-' and '_', starting and ending with a letter or digit, neither starting with "goog" nor containing
  # "google". Dotted names are refused: they need a verified domain.
  local bucket=${CFG[SAGA_START_BUCKET]:-$project-saga-starts}
  if [[ ! $bucket =~ ^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$ || $bucket == goog* || $bucket == *google* ]]; then
    local origin="SAGA_START_BUCKET"
    [[ -n ${CFG[SAGA_START_BUCKET]:-} ]] || origin="SAGA_START_BUCKET is empty, and its default <SAGA_PROJECT_ID>-saga-starts"
    bad+=("$origin must be a bucket name (3-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit, not starting with 'goog' nor containing 'google'), got '$bucket'")
  fi
  for name in $(secret_names); do
    [[ $name =~ ^[A-Za-z0-9_-]{1,255}$ ]] || bad+=("SAGA_SECRETS: '$name' is not a secret name")
  done
  # Cloud Run takes 1 to 1000 concurrent requests per instance
  # (https://cloud.google.com/run/docs/about-concurrency).
  local value
  for name in "${FUNCTIONS[@]}"; do
    key=$(function_key "$name" CONCURRENCY)
    value=${CFG[$key]}
    [[ $value =~ ^[1-9][0-9]*$ ]] && ((value <= 1000)) ||
      bad+=("$key must be a whole number from 1 to 1000, got '$value'")
    key=$(function_key "$name" MAX_INSTANCES)
    [[ ${CFG[$key]} =~ ^[1-9][0-9]*$ ]] || bad+=("$key must be a positive whole number, got '${CFG[$key]}'")
  done
  # Cloud Tasks accepts a dispatch deadline of 15 s to 30 min; an event-driven function (start_saga) at
  # most a 540 s timeout (https://cloud.google.com/functions/docs/configuring/timeout).
  if [[ ${CFG[SAGA_DISPATCH_DEADLINE_SECONDS]} =~ ^[0-9.]+$ ]] &&
    awk -v d="${CFG[SAGA_DISPATCH_DEADLINE_SECONDS]}" 'BEGIN { exit !(d < 15 || d > 1800) }'; then
    bad+=("SAGA_DISPATCH_DEADLINE_SECONDS must be between 15 and 1800, got '${CFG[SAGA_DISPATCH_DEADLINE_SECONDS]}'")
  fi
  local timeout=${CFG[DEPLOY_FUNCTION_TIMEOUT_SECONDS]}
  if [[ $timeout =~ ^[0-9]+$ ]] && ((timeout < 1 || timeout > 540)); then
    bad+=("DEPLOY_FUNCTION_TIMEOUT_SECONDS must be between 1 and 540 (start_saga is event-driven), got '$timeout'")
  fi
  if ((${#bad[@]} > 0)); then
    printf 'deploy.sh: error: %s\n' "${bad[@]}" >&2
    exit 1
  fi
  if [[ $timeout =~ ^[0-9]+$ ]] && awk -v t="$timeout" -v d="${CFG[SAGA_DISPATCH_DEADLINE_SECONDS]}" 'BEGIN { exit !(t < d) }'; then
    warn "DEPLOY_FUNCTION_TIMEOUT_SECONDS ($timeout) is shorter than SAGA_DISPATCH_DEADLINE_SECONDS (${CFG[SAGA_DISPATCH_DEADLINE_SECONDS]}): step_executor would be stopped before Cloud Tasks gives up on an attempt"
  fi
}

# function_key NAME SUFFIX: the setting of one function (step_executor CONCURRENCY ->
# DEPLOY_STEP_EXECUTOR_CONCURRENCY).
function_key() { printf 'DEPLOY_%s_%s' "${1^^}" "$2"; }

secret_names() {
  local raw=${CFG[SAGA_SECRETS]:-} item
  local -a items=()
  IFS=',' read -r -a items <<<"$raw"
  for item in "${items[@]}"; do
    item=${item//[[:space:]]/}
    [[ -n $item ]] && printf '%s\n' "$item"
  done
  return 0
}

validate_settings

readonly PROJECT=${CFG[SAGA_PROJECT_ID]}
readonly REGION=${CFG[SAGA_LOCATION]}
readonly P_FLAG="--project=$PROJECT"
sa_email() { printf '%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT"; }
STARTER=$(sa_email "${CFG[SAGA_STARTER_SA]}")
WORKFLOW_SA=$(sa_email "${CFG[SAGA_WORKFLOW_SA]}")
EXECUTOR=$(sa_email "${CFG[SAGA_EXECUTOR_SA]}")
COMPLETION=$(sa_email "${CFG[SAGA_COMPLETION_SA]}")
TASKS_INVOKER=$(sa_email "${CFG[SAGA_TASKS_INVOKER_SA]}")
SWEEPER=$(sa_email "${CFG[SAGA_SWEEPER_SA]}")
SCHEDULER=$(sa_email "${CFG[SAGA_SCHEDULER_SA]}")
readonly STARTER WORKFLOW_SA EXECUTOR COMPLETION TASKS_INVOKER SWEEPER SCHEDULER
readonly SWEEP_JOB=saga-sweeper
# The identity Eventarc uses to push to start_saga. Defaults to the starter's own account; set
# SAGA_TRIGGER_SA to give the trigger an account of its own (it then holds run.invoker on start_saga only).
readonly TRIGGER_SA_ID=${CFG[SAGA_TRIGGER_SA]:-${CFG[SAGA_STARTER_SA]}}
TRIGGER=$(sa_email "$TRIGGER_SA_ID")
readonly TRIGGER
readonly QUEUE=${CFG[SAGA_TASK_QUEUE]}
readonly QUEUE_PATH="projects/$PROJECT/locations/$REGION/queues/$QUEUE"
# The account Cloud Build builds the functions as (--build-service-account). An id: deploy.sh creates
# it and grants it the build roles. An email: an account of your own, used as it is (--check says which
# roles it lacks).
if [[ ${CFG[DEPLOY_BUILD_SA]} == *@* ]]; then
  BUILD_SA=${CFG[DEPLOY_BUILD_SA]}
  BUILD_SA_OWN=0
else
  BUILD_SA=$(sa_email "${CFG[DEPLOY_BUILD_SA]}")
  BUILD_SA_OWN=1
fi
readonly BUILD_SA BUILD_SA_OWN
# The roles a build service account needs (https://cloud.google.com/functions/docs/securing/build-custom-sa):
# Logs Writer (project: Cloud Logging takes no narrower resource), Storage Object Viewer (project: the
# function source lands in a bucket that Cloud Functions creates during the first deploy, so it does
# not exist before the first build) and Artifact Registry Writer (on REPOSITORY only).
readonly BUILD_PROJECT_ROLES=(roles/logging.logWriter roles/storage.objectViewer)
# The predefined role that covers what a build needs (the same page), accepted on an account of your own.
readonly BUILD_ROLE_COVERING=roles/cloudbuild.builds.builder
# The custom role of the step executor (DEPLOY_CALLBACK_ROLE_ID).
readonly CALLBACK_ROLE_ID=${CFG[DEPLOY_CALLBACK_ROLE_ID]}
readonly CALLBACK_ROLE="projects/$PROJECT/roles/$CALLBACK_ROLE_ID"
# The custom role of the starter on the bucket of start claims (DEPLOY_START_CLAIMS_ROLE_ID).
readonly START_CLAIMS_ROLE_ID=${CFG[DEPLOY_START_CLAIMS_ROLE_ID]}
readonly START_CLAIMS_ROLE="projects/$PROJECT/roles/$START_CLAIMS_ROLE_ID"
# The bucket where start_saga claims each saga id: SAGA_START_BUCKET, or <project id>-saga-starts when the
# key is empty, as the functions name it (Settings.start_bucket; the key reaches them as it is).
readonly START_BUCKET=${CFG[SAGA_START_BUCKET]:-$PROJECT-saga-starts}
readonly START_BUCKET_URL="gs://$START_BUCKET"
readonly REPOSITORY_PATH="projects/$PROJECT/locations/$REGION/repositories/$REPOSITORY"

# ---------------------------------------------------------------------------------------------------
# running, checking and printing commands

# Quote one word the way a shell reads it back: bare when it only has safe characters.
shquote() {
  if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$1"
  elif [[ $1 =~ ^(--[a-z0-9-]+=)(.*)$ ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
    shquote "${BASH_REMATCH[2]}"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

quote_cmd() {
  local word out=""
  for word in "$@"; do out+="${out:+ }$(shquote "$word")"; done
  printf '%s' "$out"
}

# probe CMD...: a read-only check (describe, list, get-iam-policy). Its stdout lands in PROBE_OUT; it
# fails when the command fails (for a describe: the resource does not exist). In a dry run nothing is
# called: the check is printed and treated as "does not exist yet".
PROBE_OUT=""
probe() {
  PROBE_OUT=""
  if ((DRY_RUN)); then
    say "? would check: $(quote_cmd "$@")"
    return 1
  fi
  PROBE_OUT=$("$@" 2>/dev/null) || return 1
}

# probe_err CMD...: like probe, and the command's stderr lands in PROBE_ERR, for a check that must tell
# "does not exist" from "may not be read".
PROBE_ERR=""
probe_err() {
  local status=0
  PROBE_OUT=""
  PROBE_ERR=""
  if ((DRY_RUN)); then
    say "? would check: $(quote_cmd "$@")"
    return 1
  fi
  PROBE_OUT=$("$@" 2>"$WORK/probe.err") || status=$?
  PROBE_ERR=$(<"$WORK/probe.err")
  return "$status"
}

# act WHEN CMD...: a command that changes something. WHEN says, in a dry run, under which condition it
# would run (the check before it could not be made).
act() {
  local when=$1
  shift
  if ((DRY_RUN)); then
    say "+ $(quote_cmd "$@")${when:+  # $when}"
    return 0
  fi
  say "+ $(quote_cmd "$@")"
  "$@" || die "command failed (exit $?): $(quote_cmd "$@")"
}

# act_iam WHEN CMD...: like act, for IAM bindings. A service account created seconds ago may not be
# visible to IAM yet, so "does not exist" errors are retried a few times (bounded: about 40 s in all).
act_iam() {
  local when=$1 attempt err
  shift
  if ((DRY_RUN)); then
    act "$when" "$@"
    return 0
  fi
  say "+ $(quote_cmd "$@")"
  err=$(mktemp "$WORK/err.XXXXXX")
  for attempt in 1 2 3 4 5; do
    if "$@" >/dev/null 2>"$err"; then
      return 0
    fi
    if ((attempt < 5)) && grep -qiE 'does not exist|not ?found|NOT_FOUND' "$err"; then
      say "  (not visible to IAM yet; retrying in $((attempt * 4)) s)"
      sleep $((attempt * 4))
      continue
    fi
    cat "$err" >&2
    die "command failed: $(quote_cmd "$@")"
  done
}

section() {
  say ""
  say "## $*"
}

# Numbers as Cloud Tasks reports them ("0.500s", "100.0", "" for 0) compared with the settings.
same_number() {
  awk -v a="$1" -v b="$2" 'BEGIN { sub(/s$/, "", a); sub(/s$/, "", b); exit !((a + 0) == (b + 0)) }'
}

digest() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum | cut -c1-40
  else
    shasum -a 256 | cut -c1-40
  fi
}

# Every file under a directory, name and content, in a stable order.
tree_dump() {
  local file
  (cd "$1" && find . -type f -print | LC_ALL=C sort | while IFS= read -r file; do
    printf '%s\n' "$file"
    cat "$file"
  done)
}

# ---------------------------------------------------------------------------------------------------
# resources

check_tools() {
  ((DRY_RUN)) && return 0
  command -v gcloud >/dev/null 2>&1 ||
    die "gcloud not found on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), run 'gcloud auth login', then run this again (or use --dry-run to see the plan)"
}

PROJECT_NUMBER="<number of project $PROJECT>"
PUBSUB_AGENT=""
read_project() {
  section "project $PROJECT"
  if probe gcloud projects describe "$PROJECT" --format='value(projectNumber)'; then
    PROJECT_NUMBER=$PROBE_OUT
    say "= project $PROJECT (number $PROJECT_NUMBER)"
  elif ((!DRY_RUN)); then
    die "cannot read project '$PROJECT' with gcloud: check the project id and your login (gcloud auth login)"
  fi
  # The Pub/Sub service agent: the Google-managed identity that pushes Eventarc's Pub/Sub events.
  PUBSUB_AGENT="service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com"
}

# --- policies ------------------------------------------------------------------------------------

# Each IAM policy is read once per run (POLICIES caches it as "role<TAB>member" lines, and what this run
# added or removed), by the checks and by the deploy alike.
declare -A POLICIES=()
load_policy() {
  local key="$*"
  if [[ -z ${POLICIES[$key]+x} ]]; then
    probe "$@" --flatten='bindings[].members' --format='value(bindings.role,bindings.members)' || true
    POLICIES[$key]=$PROBE_OUT
  fi
}

# has_binding ROLE MEMBER GET-CMD...: whether the policy GET-CMD prints holds the binding.
has_binding() {
  local role=$1 member=$2 line
  shift 2
  load_policy "$@"
  while IFS= read -r line; do
    [[ $line == "$role"$'\t'"$member" ]] && return 0
  done <<<"${POLICIES[$*]:-}"
  return 1
}

forget_binding() {
  local role=$1 member=$2 key line kept=""
  shift 2
  key="$*"
  while IFS= read -r line; do
    [[ -n $line && $line != "$role"$'\t'"$member" ]] && kept+="$line"$'\n'
  done <<<"${POLICIES[$key]:-}"
  POLICIES[$key]=$kept
}

readonly PROJECT_POLICY=(gcloud projects get-iam-policy "$PROJECT")
readonly GRANT_PROJECT_CMD=(gcloud projects add-iam-policy-binding "$PROJECT")
# The custom roles, in the order a deploy creates them: what each is for, its permissions, its title and
# description.
readonly CUSTOM_ROLES=("$CALLBACK_ROLE_ID" "$START_CLAIMS_ROLE_ID")
declare -A ROLE_PURPOSE=([$CALLBACK_ROLE_ID]="step_executor's callbacks" [$START_CLAIMS_ROLE_ID]="start_saga's claims")
declare -A ROLE_PERMISSIONS=([$CALLBACK_ROLE_ID]=$CALLBACK_PERMISSION [$START_CLAIMS_ROLE_ID]=$START_CLAIMS_PERMISSIONS)
declare -A ROLE_TITLE=([$CALLBACK_ROLE_ID]="Saga callback sender" [$START_CLAIMS_ROLE_ID]="Saga start claims")
declare -A ROLE_DESCRIPTION=(
  [$CALLBACK_ROLE_ID]="Sends Workflows callbacks and reads execution states for step_executor of the saga orchestrator, nothing else"
  [$START_CLAIMS_ROLE_ID]="Creates, reads, updates and deletes the start claims of the saga orchestrator, nothing else"
)
readonly ROLE_PURPOSE ROLE_PERMISSIONS ROLE_TITLE ROLE_DESCRIPTION
ROLE_CREATE_CMD=()
role_create_cmd() {
  ROLE_CREATE_CMD=(gcloud iam roles create "$1" "$P_FLAG" "--title=${ROLE_TITLE[$1]}"
    "--description=${ROLE_DESCRIPTION[$1]}" "--permissions=${ROLE_PERMISSIONS[$1]}" --stage=GA)
}
# The bucket of start claims (https://cloud.google.com/sdk/gcloud/reference/storage/buckets/create): in
# SAGA_LOCATION, beside the functions; uniform bucket-level access (IAM alone decides, no object ACLs;
# https://cloud.google.com/storage/docs/uniform-bucket-level-access); public access prevention (no grant
# can ever make a claim public; https://cloud.google.com/storage/docs/public-access-prevention); soft
# delete off (--soft-delete-duration=0: only released claims are ever deleted, and a soft-deleted copy
# would only be billed; https://cloud.google.com/storage/docs/soft-delete). No lifecycle rule, retention
# policy or object versioning: a new bucket has none, and none may be added (a rule that deletes claims
# lets a saga id start again; a retention policy forbids releasing a claim).
readonly START_BUCKET_CREATE_CMD=(gcloud storage buckets create "$START_BUCKET_URL" "$P_FLAG" "--location=$REGION"
  --uniform-bucket-level-access --public-access-prevention --soft-delete-duration=0)
readonly START_BUCKET_POLICY=(gcloud storage buckets get-iam-policy "$START_BUCKET_URL" "$P_FLAG")
# The starter's grant, on the bucket only
# (https://cloud.google.com/sdk/gcloud/reference/storage/buckets/add-iam-policy-binding).
readonly GRANT_START_BUCKET_CMD=(gcloud storage buckets add-iam-policy-binding "$START_BUCKET_URL" "$P_FLAG"
  "--member=serviceAccount:$STARTER" "--role=$START_CLAIMS_ROLE")
account_policy() { ACCOUNT_POLICY=(gcloud iam service-accounts get-iam-policy "$1" "$P_FLAG"); }
ACCOUNT_POLICY=()

# --- checks --------------------------------------------------------------------------------------

CHECK_ERRORS=0
CHECK_TODO=0
CHECK_WARNINGS=0
# finding LEVEL WHAT FIX: one line per finding, with the command (or setting) that fixes it. LEVEL is
# error (a deploy would fail, or the stack would not work, and deploy.sh does not fix it), todo (missing;
# a deploy makes it, with FIX) or warning (works, at a cost).
finding() {
  local level=$1 what=$2 fix=$3
  case $level in
    error) CHECK_ERRORS=$((CHECK_ERRORS + 1)) ;;
    todo) CHECK_TODO=$((CHECK_TODO + 1)) ;;
    *) CHECK_WARNINGS=$((CHECK_WARNINGS + 1)) ;;
  esac
  say "$level: $what -- fix: $fix"
}

# Settings that cannot work on Google Cloud, or that a Cloud Tasks limit refuses.
check_settings() {
  local hosts=${CFG[SAGA_ALLOWED_HOSTS]:-} host local_only=1
  local -a entries=()
  IFS=',' read -r -a entries <<<"$hosts"
  for host in "${entries[@]}"; do
    host=${host//[[:space:]]/}
    [[ -z $host || ${host,,} =~ ^(127\.[0-9.]+|localhost|\[::1\]|::1)(:[0-9]+)?$ ]] || local_only=0
  done
  if ((local_only)); then
    finding error "SAGA_ALLOWED_HOSTS ($hosts) names only loopback hosts, the local default: on Google Cloud step_executor would refuse every participant URL" \
      "set SAGA_ALLOWED_HOSTS to your participants' hosts in $SETTINGS_FILE or the environment, e.g. SAGA_ALLOWED_HOSTS=api.example.com,*.example.net bash deploy.sh --project $PROJECT"
  else
    say "= SAGA_ALLOWED_HOSTS=$hosts"
  fi
  local rate=${CFG[SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND]} concurrent=${CFG[SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES]}
  if awk -v r="$rate" -v l="$QUEUE_MAX_DISPATCHES_PER_SECOND_LIMIT" 'BEGIN { exit !(r > l) }'; then
    finding error "SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND=$rate is over Cloud Tasks' limit of $QUEUE_MAX_DISPATCHES_PER_SECOND_LIMIT per queue" \
      "SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND=$QUEUE_MAX_DISPATCHES_PER_SECOND_LIMIT"
  fi
  if ((concurrent > QUEUE_MAX_CONCURRENT_DISPATCHES_LIMIT)); then
    finding error "SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES=$concurrent is over Cloud Tasks' limit of $QUEUE_MAX_CONCURRENT_DISPATCHES_LIMIT per queue" \
      "SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES=$QUEUE_MAX_CONCURRENT_DISPATCHES_LIMIT"
  fi
  # Cloud Tasks may have this many calls of step_executor under way at once; an instance takes
  # CONCURRENCY of them and at most MAX_INSTANCES run. A call beyond that is refused (429) and retried,
  # which costs one of the queue's attempts (SAGA_QUEUE_MAX_ATTEMPTS), and one of the step's when the
  # platform's 429 counts as a handler answer (see saga_orchestrator.executor).
  local per=${CFG[DEPLOY_STEP_EXECUTOR_CONCURRENCY]} most=${CFG[DEPLOY_STEP_EXECUTOR_MAX_INSTANCES]}
  if ((per * most < concurrent)); then
    finding warning "step_executor takes at most $((per * most)) calls at once (DEPLOY_STEP_EXECUTOR_CONCURRENCY=$per x DEPLOY_STEP_EXECUTOR_MAX_INSTANCES=$most) but the queue dispatches up to $concurrent (SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES): the rest are refused and retried, each costing a queue attempt" \
      "DEPLOY_STEP_EXECUTOR_MAX_INSTANCES=$(((concurrent + per - 1) / per))"
  fi
}

check_apis() {
  local api missing=()
  probe gcloud services list --enabled "$P_FLAG" --format='value(config.name)' || return 0
  for api in "${APIS[@]}"; do
    grep -qxF "$api" <<<"$PROBE_OUT" || missing+=("$api")
  done
  if ((${#missing[@]} > 0)); then
    finding todo "APIs not enabled: ${missing[*]}" "$(quote_cmd gcloud services enable "${missing[@]}" "$P_FLAG")"
  else
    say "= all ${#APIS[@]} APIs enabled"
  fi
}

account_exists() {
  probe gcloud iam service-accounts describe "$1" "$P_FLAG" --format='value(email)'
}

# Cloud Build builds each function as BUILD_SA. Since July 2024 a new project's default build account
# may lack the permissions to build a function, so every function names its build account
# (https://cloud.google.com/functions/docs/securing/build-custom-sa).
check_build_account() {
  local role member="serviceAccount:$BUILD_SA"
  if ((BUILD_SA_OWN)); then
    if account_exists "$BUILD_SA"; then
      say "= build service account $BUILD_SA"
    elif ((!DRY_RUN)); then
      finding todo "build service account $BUILD_SA does not exist" "$(create_account_cmd "${CFG[DEPLOY_BUILD_SA]}" "saga function builds")"
    fi
    for role in "${BUILD_PROJECT_ROLES[@]}"; do
      if ! has_binding "$role" "$member" "${PROJECT_POLICY[@]}" && ((!DRY_RUN)); then
        finding todo "build service account $BUILD_SA lacks $role" "$(quote_cmd "${GRANT_PROJECT_CMD[@]}" "--member=$member" "--role=$role" --condition=None)"
      fi
    done
    return 0
  fi
  # An account of your own: deploy.sh neither creates it nor grants it project roles.
  if ! account_exists "$BUILD_SA"; then
    ((DRY_RUN)) || finding error "DEPLOY_BUILD_SA names $BUILD_SA, which does not exist or cannot be read" \
      "create it, or set DEPLOY_BUILD_SA=saga-build to have deploy.sh create a build account"
    return 0
  fi
  if has_binding "$BUILD_ROLE_COVERING" "$member" "${PROJECT_POLICY[@]}"; then
    say "= build service account $BUILD_SA ($BUILD_ROLE_COVERING)"
    return 0
  fi
  ((DRY_RUN)) && return 0
  local lacking=0
  for role in "${BUILD_PROJECT_ROLES[@]}"; do
    if ! has_binding "$role" "$member" "${PROJECT_POLICY[@]}"; then
      lacking=1
      finding error "build service account $BUILD_SA lacks $role: the build of every function would fail" \
        "$(quote_cmd "${GRANT_PROJECT_CMD[@]}" "--member=$member" "--role=$role" --condition=None)"
    fi
  done
  ((lacking)) || say "= build service account $BUILD_SA (${BUILD_PROJECT_ROLES[*]})"
}

# permission_list LIST: permissions as gcloud prints a list (';') or takes one (','), sorted, ','-joined.
permission_list() {
  local -a items=()
  local joined
  IFS=',;' read -r -a items <<<"$1"
  joined=$(printf '%s\n' "${items[@]}" | LC_ALL=C sort -u | tr '\n' ',')
  joined=${joined#,}
  printf '%s' "${joined%,}"
}

# The custom roles (CUSTOM_ROLES): one that holds only workflows.callbacks.send, one that holds only the
# object permissions of a start claim. A deleted custom role can be undeleted within 7 days; after that
# its id stays taken until the deletion completes, up to 37 days after it
# (https://cloud.google.com/iam/docs/creating-custom-roles): a deploy in that window needs another
# DEPLOY_CALLBACK_ROLE_ID / DEPLOY_START_CLAIMS_ROLE_ID. ROLE_STATE says what a deploy does with each:
# missing (create it), ok, or "deleted" (undelete it) and/or "changed" (set its permissions).
declare -A ROLE_STATE=()
check_custom_role() {
  local id=$1 role="projects/$PROJECT/roles/$1" want have state=""
  want=$(permission_list "${ROLE_PERMISSIONS[$id]}")
  if ! probe gcloud iam roles describe "$id" "$P_FLAG" --format='value(includedPermissions,deleted)'; then
    ROLE_STATE[$id]=missing
    role_create_cmd "$id"
    ((DRY_RUN)) || finding todo "custom role $role (only $want, for ${ROLE_PURPOSE[$id]}) does not exist" "$(quote_cmd "${ROLE_CREATE_CMD[@]}")"
    return 0
  fi
  have=$(permission_list "${PROBE_OUT%%$'\t'*}")
  if [[ ${PROBE_OUT#*$'\t'} == True ]]; then
    state+=" deleted"
    finding todo "custom role $role was deleted" "$(quote_cmd gcloud iam roles undelete "$id" "$P_FLAG")"
  fi
  if [[ $have != "$want" ]]; then
    state+=" changed"
    finding todo "custom role $role holds other permissions than $want ($have)" "$(quote_cmd gcloud iam roles update "$id" "$P_FLAG" "--permissions=$want")"
  fi
  ROLE_STATE[$id]=${state:-ok}
  [[ -n $state ]] || say "= custom role $role ($want)"
}

# In projects whose Pub/Sub service agent was created on or before 2021-04-08, the agent needs Service
# Account Token Creator to mint the token that Eventarc's push to start_saga carries
# (https://cloud.google.com/eventarc/standard/docs/functions/roles-permissions). No API reports when the
# agent was created, so deploy.sh grants it in every project, on the trigger's account only (the
# narrowest resource the role takes; the page's command grants it on the whole project).
check_pubsub_agent() {
  local role=roles/iam.serviceAccountTokenCreator member="serviceAccount:$PUBSUB_AGENT"
  account_policy "$TRIGGER"
  if has_binding "$role" "$member" "${ACCOUNT_POLICY[@]}"; then
    say "= $role for the Pub/Sub service agent on $TRIGGER"
  elif has_binding "$role" "$member" "${PROJECT_POLICY[@]}"; then
    say "= $role for the Pub/Sub service agent on project $PROJECT"
  elif ((!DRY_RUN)); then
    finding todo "the Pub/Sub service agent $PUBSUB_AGENT may not mint tokens for $TRIGGER: if it was created on or before 2021-04-08, Eventarc cannot push to start_saga and no saga starts" \
      "$(quote_cmd gcloud iam service-accounts add-iam-policy-binding "$TRIGGER" "$P_FLAG" "--member=$member" "--role=$role")"
  fi
}

# The bucket of start claims, read with `gcloud storage buckets describe --raw`, whose fields are the JSON
# API's (https://cloud.google.com/sdk/gcloud/reference/storage/buckets/describe,
# https://cloud.google.com/storage/docs/json_api/v1/buckets). Missing: a deploy creates it (todo). An
# error, which a deploy does not fix: a bucket that cannot be read (bucket names are global, so it is
# likely another project's: Cloud Storage answers 403 there and 404 for a name nobody holds), one of
# another project (projectNumber), one without uniform bucket-level access (object ACLs would decide
# too; switching it on is the owner's call, as it turns off the ACLs others may rely on), one with a
# retention policy (a claim could not be released), one with a lifecycle rule that deletes objects (a
# saga id could start again). A warning, as it works at a cost: another location than SAGA_LOCATION, no
# public access prevention, object versioning or soft delete on (deleted claims kept and billed).
START_BUCKET_STATE=""
check_start_bucket() {
  local fields='value(projectNumber,location,iamConfiguration.uniformBucketLevelAccess.enabled,iamConfiguration.publicAccessPrevention,retentionPolicy.retentionPeriod,lifecycle.rule[].action.type,versioning.enabled,softDeletePolicy.retentionDurationSeconds)'
  local other="$PROJECT-saga-starts" update=(gcloud storage buckets update "$START_BUCKET_URL" "$P_FLAG")
  [[ $START_BUCKET != "$other" ]] || other="$PROJECT-saga-start-claims"
  local rename="set SAGA_START_BUCKET to a name no bucket has yet (deploy.sh creates it in project $PROJECT), e.g. SAGA_START_BUCKET=$other bash deploy.sh --project $PROJECT"
  if ! probe_err gcloud storage buckets describe "$START_BUCKET_URL" "$P_FLAG" --raw --format="$fields"; then
    START_BUCKET_STATE=missing
    ((DRY_RUN)) && return 0
    if [[ $PROBE_ERR == *"not found: 404"* ]]; then
      finding todo "bucket $START_BUCKET_URL (start claims) does not exist" "$(quote_cmd "${START_BUCKET_CREATE_CMD[@]}")"
      finding todo "$STARTER may not claim saga ids in $START_BUCKET_URL ($START_CLAIMS_ROLE on the bucket)" "$(quote_cmd "${GRANT_START_BUCKET_CMD[@]}")"
    else
      START_BUCKET_STATE=foreign
      # gcloud's first error line, without its "ERROR: (gcloud.storage.buckets.describe) " prefix.
      local why=${PROBE_ERR%%$'\n'*}
      [[ ! $why =~ ^ERROR:\ \([^\)]*\)\ (.*)$ ]] || why=${BASH_REMATCH[1]}
      finding error "bucket $START_BUCKET_URL (SAGA_START_BUCKET) exists but cannot be read (${why%.}): bucket names are global, so it is likely another project's" "$rename"
    fi
    return 0
  fi
  local -a have=()
  IFS='|' read -r -a have <<<"${PROBE_OUT//$'\t'/|}"
  local number=${have[0]:-} location=${have[1]:-} uniform=${have[2]:-} prevention=${have[3]:-}
  local retention=${have[4]:-} actions=${have[5]:-} versioning=${have[6]:-} soft_delete=${have[7]:-}
  if [[ $number != "$PROJECT_NUMBER" ]]; then
    START_BUCKET_STATE=foreign
    finding error "bucket $START_BUCKET_URL (SAGA_START_BUCKET) belongs to another project (number $number), not to $PROJECT (number $PROJECT_NUMBER)" "$rename"
    return 0
  fi
  local errors=$CHECK_ERRORS
  if [[ $uniform != True ]]; then
    finding error "bucket $START_BUCKET_URL has no uniform bucket-level access: object ACLs could grant access to claims beside IAM" \
      "$(quote_cmd "${update[@]}" --uniform-bucket-level-access)"
  fi
  if [[ -n $retention && $retention != 0 ]]; then
    finding error "bucket $START_BUCKET_URL has a retention policy ($retention s): a claim whose start Workflows refused could not be released, and its saga would never start (a locked policy stays: then use another bucket, SAGA_START_BUCKET)" \
      "$(quote_cmd "${update[@]}" --clear-retention-period)"
  fi
  if [[ ";$actions;" == *";Delete;"* ]]; then
    finding error "bucket $START_BUCKET_URL has a lifecycle rule that deletes objects: a deleted claim lets its saga id start again" \
      "$(quote_cmd "${update[@]}" --clear-lifecycle)"
  fi
  if ((CHECK_ERRORS > errors)); then
    START_BUCKET_STATE=misconfigured
    return 0
  fi
  START_BUCKET_STATE=ok
  say "= bucket $START_BUCKET_URL (project $PROJECT, uniform bucket-level access)"
  if [[ ${location,,} != "${REGION,,}" ]]; then
    finding warning "bucket $START_BUCKET_URL is in ${location:-?}, not in $REGION beside the functions: every claim crosses locations" \
      "none in place (a bucket's location cannot change); before the first saga starts, set SAGA_START_BUCKET to a new name and deploy.sh creates it in $REGION (a new bucket holds none of the claims made so far)"
  fi
  if [[ $prevention != enforced ]]; then
    finding warning "bucket $START_BUCKET_URL does not enforce public access prevention: a grant to allUsers would publish every saga id" \
      "$(quote_cmd "${update[@]}" --public-access-prevention)"
  fi
  if [[ $versioning == True ]]; then
    finding warning "bucket $START_BUCKET_URL keeps object versions: each released claim stays, billed, as a noncurrent version" \
      "$(quote_cmd "${update[@]}" --no-versioning)"
  fi
  if [[ -n $soft_delete && $soft_delete != 0 ]]; then
    finding warning "bucket $START_BUCKET_URL keeps deleted objects for $soft_delete s (soft delete): each released claim stays, billed, that long" \
      "$(quote_cmd "${update[@]}" --clear-soft-delete)"
  fi
  if has_binding "$START_CLAIMS_ROLE" "serviceAccount:$STARTER" "${START_BUCKET_POLICY[@]}"; then
    say "= $START_CLAIMS_ROLE for $STARTER on bucket $START_BUCKET_URL"
  else
    finding todo "$STARTER may not claim saga ids in $START_BUCKET_URL ($START_CLAIMS_ROLE on the bucket)" "$(quote_cmd "${GRANT_START_BUCKET_CMD[@]}")"
  fi
}

# Grants an earlier deploy.sh made that nothing needs any more: Workflows Invoker for step_executor
# (the custom role replaces it), Logs Writer for the workflow and step_executor (Cloud Run collects
# stdout; the workflow neither logs calls nor uses sys.log).
RETIRED_GRANTS=()
check_retired_grants() {
  local pair account role
  for pair in "$EXECUTOR roles/workflows.invoker" "$EXECUTOR roles/logging.logWriter" \
    "$WORKFLOW_SA roles/logging.logWriter"; do
    account=${pair% *}
    role=${pair#* }
    if has_binding "$role" "serviceAccount:$account" "${PROJECT_POLICY[@]}"; then
      RETIRED_GRANTS+=("$pair")
      finding todo "$account holds $role on project $PROJECT, which it no longer needs" \
        "$(quote_cmd gcloud projects remove-iam-policy-binding "$PROJECT" "--member=serviceAccount:$account" "--role=$role" --condition=None)"
    fi
  done
}

# Everything a deploy needs, read before anything changes. Prints one line per finding; returns 1 when
# a check found an error that a deploy would not fix.
run_checks() {
  section "checks (read only: nothing is changed here)"
  check_settings
  check_apis
  check_build_account
  local id
  for id in "${CUSTOM_ROLES[@]}"; do check_custom_role "$id"; done
  check_start_bucket
  check_pubsub_agent
  check_retired_grants
  if ((DRY_RUN)); then
    say "# dry run: only the settings were checked; a deploy reads the project with the '? would check' lines above"
  fi
  say "# checks: $CHECK_ERRORS error(s), $CHECK_TODO to do (a deploy does it), $CHECK_WARNINGS warning(s)"
  ((CHECK_ERRORS == 0))
}

# --- resources -----------------------------------------------------------------------------------

create_account_cmd() {
  quote_cmd gcloud iam service-accounts create "$1" "$P_FLAG" "--display-name=$2" "--description=$CREATED_DESCRIPTION"
}

ensure_apis() {
  section "APIs"
  local api missing=()
  if probe gcloud services list --enabled "$P_FLAG" --format='value(config.name)'; then
    for api in "${APIS[@]}"; do
      grep -qxF "$api" <<<"$PROBE_OUT" || missing+=("$api")
    done
  else
    missing=("${APIS[@]}")
  fi
  if ((${#missing[@]} == 0)); then
    say "= all ${#APIS[@]} APIs enabled"
  else
    act "only those not enabled yet" gcloud services enable "${missing[@]}" "$P_FLAG"
  fi
}

ensure_service_account() {
  local id=$1 email=$2 title=$3
  if account_exists "$email"; then
    say "= service account $email"
  else
    act "if missing" gcloud iam service-accounts create "$id" "$P_FLAG" --display-name="$title" \
      "--description=$CREATED_DESCRIPTION"
  fi
}

ensure_service_accounts() {
  section "service accounts"
  ensure_service_account "${CFG[SAGA_STARTER_SA]}" "$STARTER" "saga start_saga function"
  ensure_service_account "${CFG[SAGA_WORKFLOW_SA]}" "$WORKFLOW_SA" "saga workflow"
  ensure_service_account "${CFG[SAGA_EXECUTOR_SA]}" "$EXECUTOR" "saga step_executor function"
  ensure_service_account "${CFG[SAGA_COMPLETION_SA]}" "$COMPLETION" "saga saga_completion function"
  ensure_service_account "${CFG[SAGA_TASKS_INVOKER_SA]}" "$TASKS_INVOKER" "saga Cloud Tasks caller of step_executor"
  ensure_service_account "${CFG[SAGA_SWEEPER_SA]}" "$SWEEPER" "saga saga_sweeper function"
  ensure_service_account "${CFG[SAGA_SCHEDULER_SA]}" "$SCHEDULER" "saga Cloud Scheduler caller of saga_sweeper"
  if [[ $TRIGGER != "$STARTER" ]]; then
    ensure_service_account "$TRIGGER_SA_ID" "$TRIGGER" "saga Eventarc trigger of start_saga"
  fi
  if ((BUILD_SA_OWN)); then
    ensure_service_account "${CFG[DEPLOY_BUILD_SA]}" "$BUILD_SA" "saga function builds"
  else
    say "= build service account $BUILD_SA (yours: DEPLOY_BUILD_SA)"
  fi
}

ensure_repository() {
  section "Artifact Registry repository $REPOSITORY (the function images)"
  if probe gcloud artifacts repositories describe "$REPOSITORY" "--location=$REGION" "$P_FLAG" --format='value(name)'; then
    say "= repository $REPOSITORY_PATH"
  else
    act "if missing" gcloud artifacts repositories create "$REPOSITORY" --repository-format=docker \
      "--location=$REGION" "$P_FLAG" "--description=Images of the functions of the saga orchestrator"
  fi
}

ensure_topic() {
  if probe gcloud pubsub topics describe "$1" "$P_FLAG" --format='value(name)'; then
    say "= topic $1"
  else
    act "if missing" gcloud pubsub topics create "$1" "$P_FLAG" "--labels=$CREATED_LABEL"
  fi
}

ensure_topics() {
  section "topics"
  ensure_topic "${CFG[SAGA_REQUEST_TOPIC]}"
  ensure_topic "${CFG[SAGA_RESULT_TOPIC]}"
}

ensure_queue() {
  section "Cloud Tasks queue $QUEUE"
  local flags=(
    "--max-attempts=${CFG[SAGA_QUEUE_MAX_ATTEMPTS]}"
    "--min-backoff=${CFG[SAGA_QUEUE_MIN_BACKOFF_SECONDS]}s"
    "--max-backoff=${CFG[SAGA_QUEUE_MAX_BACKOFF_SECONDS]}s"
    "--max-doublings=${CFG[SAGA_QUEUE_MAX_DOUBLINGS]}"
    "--max-retry-duration=$QUEUE_MAX_RETRY_DURATION"
    "--max-dispatches-per-second=${CFG[SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND]}"
    "--max-concurrent-dispatches=${CFG[SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES]}"
  )
  local fields='value(retryConfig.maxAttempts,retryConfig.minBackoff,retryConfig.maxBackoff,retryConfig.maxDoublings,retryConfig.maxRetryDuration,rateLimits.maxDispatchesPerSecond,rateLimits.maxConcurrentDispatches)'
  if probe gcloud tasks queues describe "$QUEUE" --location="$REGION" "$P_FLAG" --format="$fields"; then
    # Fields are tab-separated and may be empty (the API leaves out zero values), so split on a
    # non-blank separator: a tab in IFS would merge neighbouring separators.
    local -a have=()
    IFS='|' read -r -a have <<<"${PROBE_OUT//$'\t'/|}"
    local want=("${CFG[SAGA_QUEUE_MAX_ATTEMPTS]}" "${CFG[SAGA_QUEUE_MIN_BACKOFF_SECONDS]}"
      "${CFG[SAGA_QUEUE_MAX_BACKOFF_SECONDS]}" "${CFG[SAGA_QUEUE_MAX_DOUBLINGS]}" "$QUEUE_MAX_RETRY_DURATION"
      "${CFG[SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND]}" "${CFG[SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES]}")
    local i differs=0
    for i in "${!want[@]}"; do
      same_number "${have[i]:-}" "${want[i]}" || differs=1
    done
    if ((differs)); then
      act "" gcloud tasks queues update "$QUEUE" --location="$REGION" "$P_FLAG" "${flags[@]}"
    else
      say "= queue $QUEUE_PATH (retry settings and rate limits as configured)"
    fi
  else
    act "if missing" gcloud tasks queues create "$QUEUE" --location="$REGION" "$P_FLAG" "${flags[@]}"
    if ((DRY_RUN)); then
      say "+ $(quote_cmd gcloud tasks queues update "$QUEUE" --location="$REGION" "$P_FLAG" "${flags[@]}")  # if it exists with other settings"
    fi
  fi
}

ensure_secrets() {
  section "secrets (existence only: values are never read or written here)"
  local name any=0
  for name in $(secret_names); do
    any=1
    if probe gcloud secrets describe "$name" "$P_FLAG" --format='value(name)'; then
      say "= secret $name"
    else
      act "if missing" gcloud secrets create "$name" --replication-policy=automatic "$P_FLAG"
    fi
    # Only version metadata is listed, never a payload.
    if probe gcloud secrets versions list "$name" "$P_FLAG" --filter='state=ENABLED' --limit=1 --format='value(name)' &&
      [[ -n $PROBE_OUT ]]; then
      continue
    fi
    say "# secret $name has no enabled version yet; add its value yourself (it never passes through this script):"
    say "#   gcloud secrets versions add $name $P_FLAG --data-file=FILE   (or --data-file=- and type it, then Ctrl-D)"
  done
  ((any)) || say "= no secrets listed in SAGA_SECRETS"
}

# ensure_binding WHAT ROLE MEMBER GET-CMD... -- ADD-CMD...: adds the (role, member) binding unless the
# policy that GET-CMD prints (one "role<TAB>member" line per member) already has it.
ensure_binding() {
  local what=$1 role=$2 member=$3
  shift 3
  local get=() add=()
  while [[ $1 != -- ]]; do get+=("$1"); shift; done
  shift
  add=("$@")
  if has_binding "$role" "$member" "${get[@]}"; then
    say "= $role for $member on $what"
    return 0
  fi
  act_iam "if missing" "${add[@]}"
  POLICIES[${get[*]}]+=$'\n'"$role"$'\t'"$member"
}

grant_project() {
  ensure_binding "project $PROJECT" "$2" "serviceAccount:$1" "${PROJECT_POLICY[@]}" -- \
    "${GRANT_PROJECT_CMD[@]}" --member="serviceAccount:$1" --role="$2" --condition=None
}

grant_topic() {
  ensure_binding "topic $1" "$3" "serviceAccount:$2" \
    gcloud pubsub topics get-iam-policy "$1" "$P_FLAG" -- \
    gcloud pubsub topics add-iam-policy-binding "$1" "$P_FLAG" --member="serviceAccount:$2" --role="$3"
}

grant_queue() {
  ensure_binding "queue $QUEUE" "$2" "serviceAccount:$1" \
    gcloud tasks queues get-iam-policy "$QUEUE" --location="$REGION" "$P_FLAG" -- \
    gcloud tasks queues add-iam-policy-binding "$QUEUE" --location="$REGION" "$P_FLAG" \
    --member="serviceAccount:$1" --role="$2"
}

grant_secret() {
  ensure_binding "secret $1" "$3" "serviceAccount:$2" \
    gcloud secrets get-iam-policy "$1" "$P_FLAG" -- \
    gcloud secrets add-iam-policy-binding "$1" "$P_FLAG" --member="serviceAccount:$2" --role="$3"
}

grant_service_account() {
  account_policy "$1"
  ensure_binding "service account $1" "$3" "serviceAccount:$2" "${ACCOUNT_POLICY[@]}" -- \
    gcloud iam service-accounts add-iam-policy-binding "$1" "$P_FLAG" --member="serviceAccount:$2" --role="$3"
}

grant_repository() {
  ensure_binding "repository $REPOSITORY" "$2" "serviceAccount:$1" \
    gcloud artifacts repositories get-iam-policy "$REPOSITORY" "--location=$REGION" "$P_FLAG" -- \
    gcloud artifacts repositories add-iam-policy-binding "$REPOSITORY" "--location=$REGION" "$P_FLAG" \
    --member="serviceAccount:$1" --role="$2"
}

# run.invoker on a gen2 function is a binding on the Cloud Run service that serves it, added with the
# documented command for it (https://cloud.google.com/sdk/gcloud/reference/functions/add-invoker-policy-binding).
# The service is read from the function (serviceConfig.service:
# https://cloud.google.com/functions/docs/reference/rest/v2/projects.locations.functions#ServiceConfig),
# never derived from the function's name.
grant_invoker() {
  local name=$1 member="serviceAccount:$2" service="<service of function $1>"
  if probe gcloud functions describe "$name" "--region=$REGION" "$P_FLAG" --format='value(serviceConfig.service)'; then
    [[ -n $PROBE_OUT ]] || die "function $name has no Cloud Run service (serviceConfig.service is empty)"
    service=${PROBE_OUT##*/}
  elif ((!DRY_RUN)); then
    die "cannot read the Cloud Run service of function $name (gcloud functions describe $name failed)"
  fi
  ensure_binding "function $name (Cloud Run service $service)" roles/run.invoker "$member" \
    gcloud run services get-iam-policy "$service" --region="$REGION" "$P_FLAG" -- \
    gcloud functions add-invoker-policy-binding "$name" --region="$REGION" "$P_FLAG" --member="$member"
}

# The bucket of start claims (see check_start_bucket): created when missing; an existing one is used as
# it is (the checks stopped the deploy when it cannot serve).
ensure_start_bucket() {
  section "bucket $START_BUCKET_URL (start claims: one object per saga id, kept for good)"
  if [[ $START_BUCKET_STATE == missing ]]; then
    act "if missing" "${START_BUCKET_CREATE_CMD[@]}"
  else
    say "= bucket $START_BUCKET_URL"
  fi
}

ensure_custom_roles() {
  local id state
  for id in "${CUSTOM_ROLES[@]}"; do
    state=${ROLE_STATE[$id]:-missing}
    section "custom role $id (${ROLE_PURPOSE[$id]}: ${ROLE_PERMISSIONS[$id]//,/, }, nothing else)"
    if [[ $state == missing ]]; then
      role_create_cmd "$id"
      act "if missing" "${ROLE_CREATE_CMD[@]}"
      continue
    fi
    [[ $state != ok ]] || say "= custom role projects/$PROJECT/roles/$id"
    [[ $state != *deleted* ]] || act "" gcloud iam roles undelete "$id" "$P_FLAG"
    [[ $state != *changed* ]] || act "" gcloud iam roles update "$id" "$P_FLAG" "--permissions=${ROLE_PERMISSIONS[$id]}"
  done
}

ensure_iam() {
  section "IAM (least privilege: each role on the narrowest resource that takes it)"
  local result_topic=${CFG[SAGA_RESULT_TOPIC]} name pair
  # Workflows roles can only be granted on a project (no per-workflow IAM), so these three are
  # project-level: https://cloud.google.com/iam/docs/roles-permissions/workflows
  # start_saga creates executions, lists them (dedupe) and cancels its own when it lost a race: the
  # Workflows Invoker role.
  grant_project "$STARTER" roles/workflows.invoker
  # step_executor sends callbacks and nothing else: the custom role.
  grant_project "$EXECUTOR" "$CALLBACK_ROLE"
  # The sweeper lists the saga workflow's executions (workflows.executions.list/get): Workflows Viewer.
  grant_project "$SWEEPER" roles/workflows.viewer
  for pair in "${RETIRED_GRANTS[@]}"; do
    act "" gcloud projects remove-iam-policy-binding "$PROJECT" "--member=serviceAccount:${pair% *}" \
      "--role=${pair#* }" --condition=None
    forget_binding "${pair#* }" "serviceAccount:${pair% *}" "${PROJECT_POLICY[@]}"
  done
  # start_saga publishes rejected results; saga_completion and the sweeper publish every other result.
  grant_topic "$result_topic" "$STARTER" roles/pubsub.publisher
  grant_topic "$result_topic" "$COMPLETION" roles/pubsub.publisher
  grant_topic "$result_topic" "$SWEEPER" roles/pubsub.publisher
  # The workflow creates each step's task and deletes a task whose outcome it stopped waiting for.
  grant_queue "$WORKFLOW_SA" roles/cloudtasks.enqueuer
  grant_queue "$WORKFLOW_SA" roles/cloudtasks.taskDeleter
  # Creating a task whose oidcToken names the tasks invoker needs actAs on that one account.
  grant_service_account "$TASKS_INVOKER" "$WORKFLOW_SA" roles/iam.serviceAccountUser
  for name in $(secret_names); do
    grant_secret "$name" "$EXECUTOR" roles/secretmanager.secretAccessor
  done
  # start_saga claims each saga id in the bucket of start claims: the custom role, on that bucket only.
  ensure_binding "bucket $START_BUCKET_URL" "$START_CLAIMS_ROLE" "serviceAccount:$STARTER" "${START_BUCKET_POLICY[@]}" -- \
    "${GRANT_START_BUCKET_CMD[@]}"
  # The Pub/Sub service agent mints the trigger's token (see check_pubsub_agent), on that account only.
  grant_service_account "$TRIGGER" "$PUBSUB_AGENT" roles/iam.serviceAccountTokenCreator
  # The build account: the build roles of Google's page (see BUILD_PROJECT_ROLES); an account of your
  # own gets only the repository grant, which is on a resource deploy.sh owns.
  if ((BUILD_SA_OWN)); then
    for name in "${BUILD_PROJECT_ROLES[@]}"; do
      grant_project "$BUILD_SA" "$name"
    done
  fi
  grant_repository "$BUILD_SA" roles/artifactregistry.writer
}

# ---------------------------------------------------------------------------------------------------
# functions and workflow

WORK=""
cleanup() {
  if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
}

# write_env_file NAME: every SAGA_* setting, and THREADS: the Python runtime serves as many requests at
# once as it has threads, so THREADS is the function's concurrency
# (https://cloud.google.com/functions/docs/configuring/concurrency).
ENV_FILE=""
write_env_file() {
  ENV_FILE="$WORK/env-$1.yaml"
  local key value
  : >"$ENV_FILE"
  for key in "${CFG_KEYS[@]}"; do
    [[ $key == SAGA_* ]] || continue
    value=${CFG[$key]}
    printf "%s: '%s'\n" "$key" "${value//\'/\'\'}" >>"$ENV_FILE"
  done
  printf "THREADS: '%s'\n" "${CFG[$(function_key "$1" CONCURRENCY)]}" >>"$ENV_FILE"
}

# functions/<name>/ + a copy of shared/saga_orchestrator/ + requirements.txt, without caches.
build_dir() {
  local name=$1 dir="$WORK/build/$1"
  mkdir -p "$dir"
  cp -R "$SCRIPT_DIR/functions/$name/." "$dir/"
  cp -R "$SCRIPT_DIR/shared/saga_orchestrator" "$dir/saga_orchestrator"
  cp "$SCRIPT_DIR/requirements.txt" "$dir/requirements.txt"
  find "$dir" \( -name __pycache__ -o -name '*.pyc' -o -name '.mypy_cache' -o -name '.pytest_cache' \) \
    -prune -exec rm -rf {} +
  printf '%s' "$dir"
}

# deploy_function NAME SERVICE_ACCOUNT TRIGGER-FLAGS...
# `gcloud functions deploy` always builds and rolls out a new revision, even from identical source. So
# the deployed function carries a label with a digest of its source and every deploy flag; when the
# label already matches, nothing is deployed. A second run with the same code and settings therefore only
# describes the four functions; a changed file or setting redeploys exactly the functions it concerns.
#
# Sizing: DEPLOY_<NAME>_CONCURRENCY requests per instance, at most DEPLOY_<NAME>_MAX_INSTANCES instances.
# A concurrency above 1 needs at least one vCPU (https://cloud.google.com/functions/docs/configuring/concurrency),
# so such a function gets --cpu=1; the others keep the default of their memory size.
deploy_function() {
  local name=$1 account=$2
  shift 2
  local dir hash concurrency
  dir=$(build_dir "$name")
  write_env_file "$name"
  concurrency=${CFG[$(function_key "$name" CONCURRENCY)]}
  local cmd=(gcloud functions deploy "$name" --gen2 "--region=$REGION" "$P_FLAG"
    "--runtime=${CFG[DEPLOY_RUNTIME]}" "--source=$dir" "--entry-point=$name"
    "--build-service-account=projects/$PROJECT/serviceAccounts/$BUILD_SA"
    "--docker-repository=$REPOSITORY_PATH"
    "--memory=${CFG[DEPLOY_FUNCTION_MEMORY]}" "--timeout=${CFG[DEPLOY_FUNCTION_TIMEOUT_SECONDS]}s"
    "--concurrency=$concurrency" "--max-instances=${CFG[$(function_key "$name" MAX_INSTANCES)]}")
  if ((concurrency > 1)); then cmd+=(--cpu=1); fi
  cmd+=("--service-account=$account" "--env-vars-file=$ENV_FILE" --no-allow-unauthenticated "$@")
  hash=$({
    printf '%s\n' "${cmd[@]//"$WORK"/@build}"
    tree_dump "$dir"
    cat "$ENV_FILE"
  } | digest)
  cmd+=("--update-labels=$LABEL=$hash")
  say "# $name: build dir = functions/$name/ + shared/saga_orchestrator/ + requirements.txt"
  say "#   (assembled in $dir, removed when deploy.sh exits); environment ($ENV_FILE):"
  sed 's/^/#   /' "$ENV_FILE"
  # A deploy whose build failed can leave the new label on a function that is not ACTIVE: redeploy that.
  if probe gcloud functions describe "$name" "--region=$REGION" "$P_FLAG" --format="value(labels.$LABEL,state)" &&
    [[ $PROBE_OUT == "$hash"$'\t'ACTIVE ]]; then
    say "= function $name (deployed from the same source and settings: $LABEL=$hash)"
  else
    act "if missing, or its source or settings changed" "${cmd[@]}"
  fi
}

FUNCTION_URL=""
function_url() {
  FUNCTION_URL="<url of $1>"
  if probe gcloud functions describe "$1" "--region=$REGION" "$P_FLAG" --format='value(serviceConfig.uri)'; then
    [[ -n $PROBE_OUT ]] || die "function $1 has no URL (serviceConfig.uri is empty)"
    FUNCTION_URL=$PROBE_OUT
  elif ((!DRY_RUN)); then
    die "cannot read the URL of function $1 (gcloud functions describe $1 failed)"
  fi
}

deploy_workflow() {
  local executor_url=$1 completion_url=$2 name=${CFG[SAGA_WORKFLOW]} source hash
  source="$SCRIPT_DIR/workflows/saga_orchestrator.yaml"
  local env_vars="SAGA_STEP_EXECUTOR_URL=$executor_url,SAGA_COMPLETION_URL=$completion_url"
  env_vars+=",SAGA_TASK_QUEUE_PATH=$QUEUE_PATH,SAGA_TASKS_INVOKER_EMAIL=$TASKS_INVOKER"
  env_vars+=",SAGA_DISPATCH_DEADLINE_SECONDS=${CFG[SAGA_DISPATCH_DEADLINE_SECONDS]}"
  local cmd=(gcloud workflows deploy "$name" "--location=$REGION" "$P_FLAG" "--source=$source"
    "--service-account=$WORKFLOW_SA" "--set-env-vars=$env_vars")
  hash=$({
    printf '%s\n' "${cmd[@]//"$SCRIPT_DIR"/@repo}"
    cat "$source"
  } | digest)
  cmd+=("--labels=$LABEL=$hash")
  if probe gcloud workflows describe "$name" "--location=$REGION" "$P_FLAG" --format="value(labels.$LABEL)" &&
    [[ $PROBE_OUT == "$hash" ]]; then
    say "= workflow $name (deployed from the same source and settings: $LABEL=$hash)"
  else
    act "if missing, or its source or settings changed" "${cmd[@]}"
  fi
}

deploy_code() {
  section "function step_executor (HTTP; called by Cloud Tasks with an OIDC token of $TASKS_INVOKER, and by the workflow's forward run with one of $WORKFLOW_SA)"
  deploy_function step_executor "$EXECUTOR" --trigger-http
  grant_invoker step_executor "$TASKS_INVOKER"
  grant_invoker step_executor "$WORKFLOW_SA"

  section "function saga_completion (HTTP; called by the workflow with an OIDC token of $WORKFLOW_SA)"
  deploy_function saga_completion "$COMPLETION" --trigger-http
  grant_invoker saga_completion "$WORKFLOW_SA"

  section "workflow ${CFG[SAGA_WORKFLOW]}"
  local executor_url completion_url
  function_url step_executor
  executor_url=$FUNCTION_URL
  function_url saga_completion
  completion_url=$FUNCTION_URL
  deploy_workflow "$executor_url" "$completion_url"

  section "function saga_sweeper (HTTP; called by Cloud Scheduler with an OIDC token of $SCHEDULER)"
  deploy_function saga_sweeper "$SWEEPER" --trigger-http
  grant_invoker saga_sweeper "$SCHEDULER"
  function_url saga_sweeper
  ensure_sweep_job "$FUNCTION_URL"

  section "function start_saga (Eventarc trigger on topic ${CFG[SAGA_REQUEST_TOPIC]}, identity $TRIGGER)"
  # --trigger-topic makes the Eventarc trigger (google.cloud.pubsub.topic.v1.messagePublished); --retry
  # redelivers an event whose handling failed (for up to 24 h); the trigger's account needs run.invoker
  # on start_saga only (eventarc.eventReceiver is for non-Pub/Sub event sources, so it is not granted).
  deploy_function start_saga "$STARTER" "--trigger-topic=${CFG[SAGA_REQUEST_TOPIC]}" --retry \
    "--trigger-service-account=$TRIGGER"
  grant_invoker start_saga "$TRIGGER"
}

# The Cloud Scheduler job that calls saga_sweeper on DEPLOY_SWEEP_SCHEDULE (unix-cron, UTC) with an OIDC
# token of the scheduler account, audience = the function's URL
# (https://cloud.google.com/scheduler/docs/http-target-auth,
# https://cloud.google.com/sdk/gcloud/reference/scheduler/jobs/create/http). Creating it needs actAs on
# that account (the deployer has it). Updated in place when its schedule, URL or account differ.
ensure_sweep_job() {
  local url=$1 schedule=${CFG[DEPLOY_SWEEP_SCHEDULE]} verb
  local expected="$schedule"$'\t'"$url"$'\t'"$SCHEDULER"$'\t'"$url"
  if probe gcloud scheduler jobs describe "$SWEEP_JOB" "--location=$REGION" "$P_FLAG" \
    --format='value(schedule,httpTarget.uri,httpTarget.oidcToken.serviceAccountEmail,httpTarget.oidcToken.audience)'; then
    if [[ $PROBE_OUT == "$expected" ]]; then
      say "= scheduler job $SWEEP_JOB ($schedule -> saga_sweeper)"
      return 0
    fi
    verb=update
  else
    verb=create
  fi
  act "if missing, or its schedule, URL or account changed" gcloud scheduler jobs "$verb" http "$SWEEP_JOB" \
    "--location=$REGION" "$P_FLAG" "--schedule=$schedule" --time-zone=Etc/UTC "--uri=$url" --http-method=POST \
    "--oidc-service-account-email=$SCHEDULER" "--oidc-token-audience=$url"
}

notes() {
  section "notes"
  say "# Start a saga: gcloud pubsub topics publish ${CFG[SAGA_REQUEST_TOPIC]} $P_FLAG --message='{\"steps\": [...]}'"
  say "# Results arrive on topic ${CFG[SAGA_RESULT_TOPIC]} (subscribe to it; README: \"Deploy to Google Cloud\")."
}

# --- destroy -------------------------------------------------------------------------------------

# Removes what deploy.sh created, in the reverse order of a deploy, and nothing else: functions and the
# workflow only when they carry deploy.sh's label, topics only with its label, service accounts only with
# its description. Kept: the bucket of start claims (its claims are the memory of which saga ids already
# started: a deploy after this one must start none of them again; only its grant to the starter goes),
# the secrets (their values were never deploy.sh's), the enabled APIs (other things in the project may
# use them).

# drop WHAT CONDITION CMD...: CMD removes WHAT; it runs when the check before it found WHAT (in a dry run
# it is printed with CONDITION).
drop() {
  local what=$1 when=$2
  shift 2
  if ((DRY_RUN)); then
    act "$when" "$@"
  else
    act "" "$@"
    say "- removed: $what"
  fi
}

absent() { ((DRY_RUN)) || say "= $1: not there"; }

destroy_function() {
  local name=$1
  if probe gcloud functions describe "$name" "--region=$REGION" "$P_FLAG" --format="value(labels.$LABEL)" || ((DRY_RUN)); then
    if [[ -n $PROBE_OUT ]] || ((DRY_RUN)); then
      drop "function $name" "if it exists with the $LABEL label" gcloud functions delete "$name" --gen2 "--region=$REGION" "$P_FLAG"
    else
      say "= function $name was not deployed by deploy.sh (no $LABEL label): kept"
    fi
  else
    absent "function $name"
  fi
}

revoke_project() {
  local member="serviceAccount:$1" role=$2
  if has_binding "$role" "$member" "${PROJECT_POLICY[@]}" || ((DRY_RUN)); then
    drop "$role for $1 on project $PROJECT" "if it holds it" \
      gcloud projects remove-iam-policy-binding "$PROJECT" "--member=$member" "--role=$role" --condition=None
  fi
}

destroy_account() {
  local email=$1
  if probe gcloud iam service-accounts describe "$email" "$P_FLAG" --format='value(description)' || ((DRY_RUN)); then
    if [[ $PROBE_OUT == "$CREATED_DESCRIPTION" ]] || ((DRY_RUN)); then
      drop "service account $email" "if it exists with deploy.sh's description" \
        gcloud iam service-accounts delete "$email" "$P_FLAG"
    else
      say "= service account $email was not created by deploy.sh: kept"
    fi
  else
    absent "service account $email"
  fi
}

destroy() {
  local name topic role
  section "functions, scheduler job and workflow (start_saga first: no saga starts any more)"
  destroy_function start_saga
  if probe gcloud scheduler jobs describe "$SWEEP_JOB" "--location=$REGION" "$P_FLAG" --format='value(name)' || ((DRY_RUN)); then
    drop "scheduler job $SWEEP_JOB" "if it exists" gcloud scheduler jobs delete "$SWEEP_JOB" "--location=$REGION" "$P_FLAG"
  else
    absent "scheduler job $SWEEP_JOB"
  fi
  destroy_function saga_sweeper
  name=${CFG[SAGA_WORKFLOW]}
  if probe gcloud workflows describe "$name" "--location=$REGION" "$P_FLAG" --format="value(labels.$LABEL)" || ((DRY_RUN)); then
    if [[ -n $PROBE_OUT ]] || ((DRY_RUN)); then
      drop "workflow $name" "if it exists with the $LABEL label" gcloud workflows delete "$name" "--location=$REGION" "$P_FLAG"
    else
      say "= workflow $name was not deployed by deploy.sh (no $LABEL label): kept"
    fi
  else
    absent "workflow $name"
  fi
  destroy_function saga_completion
  destroy_function step_executor

  section "IAM bindings on what stays (the project, the bucket of start claims, the secrets)"
  if ((BUILD_SA_OWN)); then
    for role in "${BUILD_PROJECT_ROLES[@]}"; do revoke_project "$BUILD_SA" "$role"; done
  fi
  revoke_project "$SWEEPER" roles/workflows.viewer
  revoke_project "$EXECUTOR" "$CALLBACK_ROLE"
  revoke_project "$STARTER" roles/workflows.invoker
  if has_binding "$START_CLAIMS_ROLE" "serviceAccount:$STARTER" "${START_BUCKET_POLICY[@]}" || ((DRY_RUN)); then
    drop "$START_CLAIMS_ROLE for $STARTER on bucket $START_BUCKET_URL" "if it holds it" gcloud storage buckets \
      remove-iam-policy-binding "$START_BUCKET_URL" "$P_FLAG" "--member=serviceAccount:$STARTER" "--role=$START_CLAIMS_ROLE"
  fi
  for name in $(secret_names); do
    if has_binding roles/secretmanager.secretAccessor "serviceAccount:$EXECUTOR" gcloud secrets get-iam-policy "$name" "$P_FLAG" ||
      ((DRY_RUN)); then
      drop "secretAccessor for $EXECUTOR on secret $name" "if it holds it" gcloud secrets remove-iam-policy-binding \
        "$name" "$P_FLAG" "--member=serviceAccount:$EXECUTOR" --role=roles/secretmanager.secretAccessor
    fi
  done

  section "custom roles, queue, topics, repository, service accounts"
  local i id
  for ((i = ${#CUSTOM_ROLES[@]} - 1; i >= 0; i--)); do
    id=${CUSTOM_ROLES[i]}
    if probe gcloud iam roles describe "$id" "$P_FLAG" --format='value(deleted)' || ((DRY_RUN)); then
      if [[ $PROBE_OUT != True ]]; then
        drop "custom role projects/$PROJECT/roles/$id" "if it exists" gcloud iam roles delete "$id" "$P_FLAG"
      fi
    else
      absent "custom role projects/$PROJECT/roles/$id"
    fi
  done
  # Deleting the bucket (gcloud storage rm --recursive deletes every object, then the bucket:
  # https://cloud.google.com/sdk/gcloud/reference/storage/rm) forgets which saga ids started.
  say "= bucket $START_BUCKET_URL kept (its claims are the memory of which saga ids already started; deleting it lets any of them start again): gcloud storage rm --recursive $START_BUCKET_URL $P_FLAG"
  for name in $(secret_names); do
    say "= secret $name kept (its value is yours): gcloud secrets delete $name $P_FLAG"
  done
  # A deleted queue's name may not be usable again for a tombstone window of up to 3 days
  # (https://cloud.google.com/tasks/docs/reference/rest/v2/projects.locations.queues/delete).
  if probe gcloud tasks queues describe "$QUEUE" "--location=$REGION" "$P_FLAG" --format='value(name)' || ((DRY_RUN)); then
    drop "queue $QUEUE_PATH" "if it exists" gcloud tasks queues delete "$QUEUE" "--location=$REGION" "$P_FLAG"
  else
    absent "queue $QUEUE_PATH"
  fi
  for topic in "${CFG[SAGA_RESULT_TOPIC]}" "${CFG[SAGA_REQUEST_TOPIC]}"; do
    if probe gcloud pubsub topics describe "$topic" "$P_FLAG" --format='value(labels.saga_deploy)' || ((DRY_RUN)); then
      if [[ $PROBE_OUT == "${CREATED_LABEL#*=}" ]] || ((DRY_RUN)); then
        drop "topic $topic" "if it exists with the $CREATED_LABEL label" gcloud pubsub topics delete "$topic" "$P_FLAG"
      else
        say "= topic $topic was not created by deploy.sh (no $CREATED_LABEL label): kept"
      fi
    else
      absent "topic $topic"
    fi
  done
  if probe gcloud artifacts repositories describe "$REPOSITORY" "--location=$REGION" "$P_FLAG" --format='value(name)' || ((DRY_RUN)); then
    drop "repository $REPOSITORY_PATH" "if it exists" gcloud artifacts repositories delete "$REPOSITORY" "--location=$REGION" "$P_FLAG"
  else
    absent "repository $REPOSITORY_PATH"
  fi
  if ((BUILD_SA_OWN)); then destroy_account "$BUILD_SA"; fi
  if [[ $TRIGGER != "$STARTER" ]]; then destroy_account "$TRIGGER"; fi
  local account
  for account in "$SCHEDULER" "$SWEEPER" "$TASKS_INVOKER" "$COMPLETION" "$EXECUTOR" "$WORKFLOW_SA" "$STARTER"; do
    destroy_account "$account"
  done
  say "= APIs kept enabled (other things in the project may use them)"
}

main() {
  check_tools
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/saga-deploy.XXXXXX")
  trap cleanup EXIT
  local f
  for f in requirements.txt workflows/saga_orchestrator.yaml shared/saga_orchestrator/__init__.py \
    functions/step_executor/main.py functions/saga_completion/main.py functions/start_saga/main.py \
    functions/saga_sweeper/main.py; do
    [[ -f $SCRIPT_DIR/$f ]] || die "missing $f next to deploy.sh (run it from a full checkout)"
  done
  local doing="a deploy of"
  case $MODE in
    check) doing="a check (read only) of" ;;
    destroy) doing="removing the saga orchestrator from" ;;
  esac
  if ((DRY_RUN)); then
    say "# DRY RUN: the commands below are what $doing project $PROJECT, region $REGION would run."
    say "# Nothing is run and gcloud is not called; '? would check' lines are the checks that decide,"
    say "# and each '+' line says (after '#') when it would run."
  else
    say "# $doing project $PROJECT, region $REGION"
  fi
  say "# settings: $SETTINGS_FILE"
  say "export CLOUDSDK_CORE_DISABLE_PROMPTS=1"
  export CLOUDSDK_CORE_DISABLE_PROMPTS=1
  read_project
  case $MODE in
    check)
      if run_checks; then
        say "# check passed: a deploy can run"
        return 0
      fi
      die "the checks found $CHECK_ERRORS error(s) that a deploy would not fix (the lines starting with 'error:')"
      ;;
    destroy)
      destroy
      say ""
      if ((DRY_RUN)); then say "# dry run finished: nothing was changed"; else say "# done: removed from project $PROJECT"; fi
      return 0
      ;;
  esac
  run_checks ||
    die "the checks found $CHECK_ERRORS error(s) that a deploy would not fix (the lines starting with 'error:'); nothing was changed"
  ensure_apis
  ensure_service_accounts
  ensure_repository
  ensure_topics
  ensure_queue
  ensure_secrets
  ensure_start_bucket
  ensure_custom_roles
  ensure_iam
  deploy_code
  notes
  say ""
  if ((DRY_RUN)); then
    say "# dry run finished: nothing was changed"
  else
    say "# done: project $PROJECT is up to date"
  fi
}

main
