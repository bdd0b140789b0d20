#!/usr/bin/env bash
# Deploys the saga orchestrator to one Google Cloud project with gcloud, idempotently.
#
# What it provisions, in order: the APIs; the service accounts; the topics; the Cloud Tasks queue with
# its retry settings; the secrets (their existence, never a value); the least-privilege IAM bindings; the
# functions step_executor and saga_completion; the workflow; the function saga_sweeper with the Cloud
# Scheduler job that calls it; the function start_saga with its Eventarc trigger (last, so that no
# request is consumed before everything it needs exists).
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
  logging.googleapis.com iam.googleapis.com cloudscheduler.googleapis.com
)
# Keys that must have a value. SAGA_SECRETS may be empty; SAGA_TRIGGER_SA is optional (see below).
readonly REQUIRED_KEYS=(
  SAGA_PROJECT_ID SAGA_LOCATION SAGA_REQUEST_TOPIC SAGA_RESULT_TOPIC SAGA_TASK_QUEUE SAGA_WORKFLOW
  SAGA_QUEUE_MAX_ATTEMPTS SAGA_QUEUE_MIN_BACKOFF_SECONDS SAGA_QUEUE_MAX_BACKOFF_SECONDS
  SAGA_QUEUE_MAX_DOUBLINGS SAGA_QUEUE_MAX_DISPATCHES_PER_SECOND SAGA_QUEUE_MAX_CONCURRENT_DISPATCHES
  SAGA_DISPATCH_DEADLINE_SECONDS SAGA_STARTER_SA SAGA_WORKFLOW_SA SAGA_EXECUTOR_SA SAGA_COMPLETION_SA
  SAGA_TASKS_INVOKER_SA SAGA_SWEEPER_SA SAGA_SCHEDULER_SA DEPLOY_RUNTIME DEPLOY_FUNCTION_MEMORY
  DEPLOY_FUNCTION_TIMEOUT_SECONDS DEPLOY_SWEEP_SCHEDULE
)
# Keys read from the environment even when the settings file does not name them.
readonly OPTIONAL_KEYS=(SAGA_TRIGGER_SA SAGA_SECRETS)
# Cloud Tasks stops retrying when BOTH max attempts are used AND this much time has passed; 0 = no time
# limit, so SAGA_QUEUE_MAX_ATTEMPTS alone bounds the retries (the step executor enforces each step's own,
# smaller max_attempts exactly).
readonly QUEUE_MAX_RETRY_DURATION=0s
readonly LABEL=saga_deploy_hash

usage() {
  cat <<'EOF'
Usage: bash deploy.sh [--project ID] [--region REGION] [--settings FILE] [--dry-run] [--help]

Deploys the saga orchestrator to a Google Cloud project with gcloud: APIs, service accounts with
least-privilege IAM bindings, the topics, the Cloud Tasks queue, the secrets (existence only), the four
functions (with the Eventarc trigger of start_saga), the workflow and the Cloud Scheduler job of the
sweeper. A second run changes nothing unless the settings or the code changed.

  --project ID      Google Cloud project (overrides SAGA_PROJECT_ID)
  --region REGION   region of the functions, queue and workflow (overrides SAGA_LOCATION)
  --settings FILE   settings file (default: deployment.env next to this script)
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
  for name in $(secret_names); do
    [[ $name =~ ^[A-Za-z0-9_-]{1,255}$ ]] || bad+=("SAGA_SECRETS: '$name' is not a secret name")
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
check_project() {
  section "project $PROJECT"
  if probe gcloud projects describe "$PROJECT" --format='value(projectNumber)'; then
    PROJECT_NUMBER=$PROBE_OUT
    say "= project $PROJECT (number $PROJECT_NUMBER)"
  elif ((!DRY_RUN)); then
    die "cannot read project '$PROJECT' with gcloud: check the project id and your login (gcloud auth login)"
  fi
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
  if probe gcloud iam service-accounts describe "$email" "$P_FLAG" --format='value(email)'; then
    say "= service account $email"
  else
    act "if missing" gcloud iam service-accounts create "$id" "$P_FLAG" --display-name="$title"
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
}

ensure_topic() {
  if probe gcloud pubsub topics describe "$1" "$P_FLAG" --format='value(name)'; then
    say "= topic $1"
  else
    act "if missing" gcloud pubsub topics create "$1" "$P_FLAG"
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
# policy that GET-CMD prints (one "role<TAB>member" line per member) already has it. Each policy is read
# once per run (POLICIES caches it, and what this run added).
declare -A POLICIES=()
ensure_binding() {
  local what=$1 role=$2 member=$3
  shift 3
  local get=() add=()
  while [[ $1 != -- ]]; do get+=("$1"); shift; done
  shift
  add=("$@")
  local key="${get[*]}" line
  if [[ -z ${POLICIES[$key]+x} ]]; then
    probe "${get[@]}" --flatten='bindings[].members' --format='value(bindings.role,bindings.members)' || true
    POLICIES[$key]=$PROBE_OUT
  fi
  while IFS= read -r line; do
    if [[ $line == "$role"$'\t'"$member" ]]; then
      say "= $role for $member on $what"
      return 0
    fi
  done <<<"${POLICIES[$key]:-}"
  act_iam "if missing" "${add[@]}"
  POLICIES[$key]+=$'\n'"$role"$'\t'"$member"
}

grant_project() {
  ensure_binding "project $PROJECT" "$2" "serviceAccount:$1" \
    gcloud projects get-iam-policy "$PROJECT" -- \
    gcloud projects add-iam-policy-binding "$PROJECT" --member="serviceAccount:$1" --role="$2" --condition=None
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
  ensure_binding "service account $1" "$3" "serviceAccount:$2" \
    gcloud iam service-accounts get-iam-policy "$1" "$P_FLAG" -- \
    gcloud iam service-accounts add-iam-policy-binding "$1" "$P_FLAG" --member="serviceAccount:$2" --role="$3"
}

# A gen2 function is served by a Cloud Run service of the same name, lowercased, '_' replaced by '-'
# (https://cloud.google.com/functions/docs/deploying); run.invoker is granted on that service only.
run_service() { printf '%s' "${1//_/-}" | tr '[:upper:]' '[:lower:]'; }

grant_invoker() {
  local service
  service=$(run_service "$1")
  ensure_binding "function $1 (Cloud Run service $service)" roles/run.invoker "serviceAccount:$2" \
    gcloud run services get-iam-policy "$service" --region="$REGION" "$P_FLAG" -- \
    gcloud run services add-iam-policy-binding "$service" --region="$REGION" "$P_FLAG" \
    --member="serviceAccount:$2" --role=roles/run.invoker
}

ensure_iam() {
  section "IAM (least privilege: each role on the narrowest resource that takes it)"
  local result_topic=${CFG[SAGA_RESULT_TOPIC]} name
  # Workflows roles can only be granted on a project (no per-workflow IAM), so executions.create for the
  # starter and callbacks.send for the step executor (the Workflows Invoker role holds both) are
  # project-level: https://cloud.google.com/iam/docs/roles-permissions/workflows
  grant_project "$STARTER" roles/workflows.invoker
  grant_project "$EXECUTOR" roles/workflows.invoker
  # The sweeper lists the saga workflow's executions (workflows.executions.list/get): Workflows Viewer,
  # also project-level only.
  grant_project "$SWEEPER" roles/workflows.viewer
  # Writing log entries (sys.log in the workflow, structured logs) is a project-level permission.
  grant_project "$WORKFLOW_SA" roles/logging.logWriter
  grant_project "$EXECUTOR" roles/logging.logWriter
  # start_saga publishes rejected results; saga_completion publishes every other result.
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
}

# ---------------------------------------------------------------------------------------------------
# functions and workflow

WORK=""
cleanup() {
  if [[ -n $WORK && -d $WORK ]]; then rm -rf "$WORK"; fi
}

ENV_FILE=""
write_env_file() {
  ENV_FILE="$WORK/function-env.yaml"
  local key value
  : >"$ENV_FILE"
  for key in "${CFG_KEYS[@]}"; do
    [[ $key == SAGA_* ]] || continue
    value=${CFG[$key]}
    printf "%s: '%s'\n" "$key" "${value//\'/\'\'}" >>"$ENV_FILE"
  done
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
deploy_function() {
  local name=$1 account=$2
  shift 2
  local dir hash
  dir=$(build_dir "$name")
  local cmd=(gcloud functions deploy "$name" --gen2 "--region=$REGION" "$P_FLAG"
    "--runtime=${CFG[DEPLOY_RUNTIME]}" "--source=$dir" "--entry-point=$name"
    "--memory=${CFG[DEPLOY_FUNCTION_MEMORY]}" "--timeout=${CFG[DEPLOY_FUNCTION_TIMEOUT_SECONDS]}s"
    "--service-account=$account" "--env-vars-file=$ENV_FILE" --no-allow-unauthenticated "$@")
  hash=$({
    printf '%s\n' "${cmd[@]//"$WORK"/@build}"
    tree_dump "$dir"
    cat "$ENV_FILE"
  } | digest)
  cmd+=("--update-labels=$LABEL=$hash")
  say "# $name: build dir = functions/$name/ + shared/saga_orchestrator/ + requirements.txt"
  say "#   (assembled in $dir, removed when deploy.sh exits)"
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
  write_env_file
  section "function environment (every SAGA_* setting; the same for the four functions)"
  say "# --env-vars-file=$ENV_FILE holds:"
  sed 's/^/#   /' "$ENV_FILE"
  section "function step_executor (HTTP; called by Cloud Tasks with an OIDC token of $TASKS_INVOKER)"
  deploy_function step_executor "$EXECUTOR" --trigger-http
  grant_invoker step_executor "$TASKS_INVOKER"

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
  say "# Pub/Sub pushes to start_saga with an OIDC token of $TRIGGER. In projects whose Pub/Sub API was"
  say "# enabled on or before 2021-04-08, its service agent also needs, on that one account:"
  say "#   gcloud iam service-accounts add-iam-policy-binding $TRIGGER $P_FLAG --member=serviceAccount:service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com --role=roles/iam.serviceAccountTokenCreator"
  if [[ ,${CFG[SAGA_ALLOWED_HOSTS]:-}, =~ ^(,(127\.0\.0\.1|localhost|\[::1\]))*,$ ]]; then
    say "# SAGA_ALLOWED_HOSTS (${CFG[SAGA_ALLOWED_HOSTS]:-}) names only local hosts: step_executor will refuse every"
    say "# participant URL on Google Cloud. Set it to your participants' hosts and run this again."
  fi
  say "# Functions are built by Cloud Build; if a build fails for lack of permissions of the build service"
  say "# account, see https://cloud.google.com/functions/docs/troubleshooting#build-service-account"
  say "# Start a saga: gcloud pubsub topics publish ${CFG[SAGA_REQUEST_TOPIC]} $P_FLAG --message='{\"steps\": [...]}'"
  say "# Results arrive on topic ${CFG[SAGA_RESULT_TOPIC]} (subscribe to it)."
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
  if ((DRY_RUN)); then
    say "# DRY RUN: the commands below are what a deploy of project $PROJECT, region $REGION would run."
    say "# Nothing is run and gcloud is not called; '? would check' lines are the checks that decide,"
    say "# and each '+' line says (after '#') when it would run."
  else
    say "# deploying the saga orchestrator to project $PROJECT, region $REGION"
  fi
  say "# settings: $SETTINGS_FILE"
  say "export CLOUDSDK_CORE_DISABLE_PROMPTS=1"
  export CLOUDSDK_CORE_DISABLE_PROMPTS=1
  check_project
  ensure_apis
  ensure_service_accounts
  ensure_topics
  ensure_queue
  ensure_secrets
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
