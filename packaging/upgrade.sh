#!/usr/bin/env bash
# Upgrade an installed meterdesk to the code this script belongs to (or --source DIR):
#   sudo packaging/upgrade.sh
#
#  1. build the new release next to the running one (no downtime yet);
#  2. stop the services and back the database up (meterdesk backup now --label pre-upgrade,
#     the SQLite backup API or mysqldump);
#  3. point /opt/meterdesk/current at the new release and migrate;
#  4. start the services and wait for /healthz to answer healthy.
# If 3 or 4 fails, the services are stopped, the previous release is put back, the database
# is restored from the backup (the failed state is kept as *.pre-restore), the services are
# started again, and the script exits 1 saying what failed.  Exit 2: the rollback failed too.
set -uo pipefail
umask 022
# shellcheck source=packaging/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

HEALTH_TIMEOUT=60
SERVICE_CTL=""

usage() {
  cat <<EOF
usage: upgrade.sh [options]   (as root)

  --health-timeout SECONDS   how long the new version has to answer /healthz (default $HEALTH_TIMEOUT)
  --service-ctl PROGRAM      how services are stopped and started: PROGRAM stop|start UNIT...
                             (default: systemctl; with --root: none, you restart them)
$(common_usage)
EOF
}

while [ $# -gt 0 ]; do
  parse_common_option "$@"
  if [ "$OPT_SHIFT" -gt 0 ]; then shift "$OPT_SHIFT"; continue; fi
  case "$1" in
    --health-timeout) HEALTH_TIMEOUT="${2:?}"; shift 2 ;;
    --service-ctl) SERVICE_CTL="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
set -e
resolve_paths
for var in $(compgen -e); do case "$var" in MD_*) unset "$var" ;; esac; done

OLD="$(current_release)"
[ -n "$OLD" ] && [ -d "$OLD" ] || die "meterdesk is not installed under $PREFIX: run install.sh first"
[ -f "$CONFIG_FILE" ] || die "$CONFIG_FILE is missing"
STATE_DIR="$(cd / && env -i PATH=/usr/bin:/bin MD_CONFIG_FILE="$CONFIG_FILE" "$OLD/venv/bin/meterdesk" config get state_dir)"

# How services are controlled.
if [ -z "$SERVICE_CTL" ] && systemd_running; then
  SERVICE_CTL=systemctl
fi
UNITS=(meterdesk-web.service meterdesk-worker.service)
if [ "$SERVICE_CTL" = systemctl ]; then
  for optional in meterdesk-simulator.service meterdesk-mqtt.service; do
    if systemctl is-active --quiet "$optional" || systemctl is-enabled --quiet "$optional" 2>/dev/null; then
      UNITS+=("$optional")
    fi
  done
fi
services() {  # services stop|start
  local action="$1"
  [ -n "$SERVICE_CTL" ] || return 0
  if [ "$action" = stop ]; then
    # Stop in reverse order: the worker before the console.
    local reversed=() i
    for ((i = ${#UNITS[@]} - 1; i >= 0; i--)); do reversed+=("${UNITS[$i]}"); done
    "$SERVICE_CTL" stop "${reversed[@]}"
  else
    "$SERVICE_CTL" start "${UNITS[@]}"
  fi
}
reload_units() {
  render_units "$1"
  if [ "$SERVICE_CTL" = systemctl ] && [ "$UNITS_CHANGED" = 1 ]; then systemctl daemon-reload; fi
}
healthy() {
  [ -n "$SERVICE_CTL" ] || { say "    services are not managed here (--root without --service-ctl): not checked"; return 0; }
  as_service "$1/venv/bin/meterdesk" health --wait "$HEALTH_TIMEOUT"
}

say "meterdesk upgrade: $(basename "$OLD") -> new code from $SOURCE"
step "building the new release"
set +e
(set -e; build_release; printf '%s\n' "$RELEASE_DIR" > "$PREFIX/.building")
built=$?
set -e
[ "$built" = 0 ] || die "building the new release failed (above); nothing was changed, $(basename "$OLD") keeps running"
NEW="$(<"$PREFIX/.building")"
rm -f "$PREFIX/.building"
if [ "$NEW" = "$OLD" ]; then
  say "release $(basename "$NEW") is running already; nothing to do."
  exit 0
fi

step "stop services"
if ! services stop; then
  services start || true
  die "stopping the services failed (above); nothing was changed"
fi

# The backup is taken with the services stopped, so that it holds every last sale: a
# rollback then loses nothing that happened before the upgrade.
step "backup"
if ! BACKUP="$(md_in "$OLD" backup now --label pre-upgrade --print-path)"; then
  services start || true
  die "the backup failed (above); nothing was changed, $(basename "$OLD") was started again"
fi
say "    $BACKUP"

# From here on a failure rolls back.
FAILED_STEP=""
rollback() {
  local reason="$1" status=1
  trap - INT TERM
  set +e
  say ""
  say "!!! upgrade to $(basename "$NEW") failed: $reason"
  say "!!! rolling back to $(basename "$OLD")"
  services stop
  switch_current "$OLD" && say "    current -> releases/$(basename "$OLD")" || status=2
  reload_units "$OLD" || status=2
  if md_in "$OLD" backup restore --yes "$BACKUP"; then
    say "    database restored from $BACKUP"
  else
    status=2
  fi
  if [ "$status" = 1 ]; then
    services start || status=2
    if [ "$status" = 1 ] && [ -n "$SERVICE_CTL" ]; then
      healthy "$OLD" >/dev/null || status=2
    fi
  fi
  say ""
  if [ "$status" = 1 ]; then
    say "UPGRADE FAILED at \"$FAILED_STEP\": $reason."
    say "meterdesk was rolled back: $(basename "$OLD") runs again with the database as it was before"
    say "the upgrade (backup $BACKUP). The database as the failed upgrade left it is kept next to it"
    say "as *.pre-restore. The new release stays in $NEW for inspection."
  else
    say "UPGRADE FAILED at \"$FAILED_STEP\" AND THE ROLLBACK DID NOT COMPLETE (see above)."
    say "By hand: stop meterdesk-web and meterdesk-worker, point $PREFIX/current at"
    say "releases/$(basename "$OLD"), run: meterdesk backup restore $BACKUP, start both services."
  fi
  exit "$status"
}
interrupted() { FAILED_STEP="${FAILED_STEP:-interrupted}"; rollback "interrupted by a signal"; }
trap interrupted INT TERM

attempt() {  # attempt STEP-NAME COMMAND...: run (errexit on inside), roll back on failure
  local rc
  FAILED_STEP="$1"; shift
  step "$FAILED_STEP"
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  [ "$rc" = 0 ] || rollback "$FAILED_STEP did not succeed (exit $rc, output above)"
}

attempt "switch to the new release" switch_current "$NEW"
attempt "render units" reload_units "$NEW"
attempt "migrate the database" md_in "$NEW" db upgrade
attempt "start services" services start
attempt "health check" healthy "$NEW"
trap - INT TERM

step "done"
prune_releases "$OLD"
say "meterdesk upgraded: $(basename "$OLD") -> $(basename "$NEW")"
say "backup taken before the upgrade: $BACKUP"
say "previous release kept in $OLD (rollback by hand: see README, Operations)"
