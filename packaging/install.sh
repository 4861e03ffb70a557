#!/usr/bin/env bash
# Install meterdesk on a Debian 12 / Ubuntu 22.04+ box: sudo packaging/install.sh
#
# Idempotent: running it again with the same code changes nothing and keeps the data, the
# configuration and the secret key.  To move to new code use packaging/upgrade.sh (backup,
# migrate, health check, automatic rollback).  Needs no network except the Python package
# index (pip, or --wheelhouse for none at all) and, unless node packages are shipped, npm.
set -euo pipefail
umask 022
# shellcheck source=packaging/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

LISTEN="0.0.0.0:8000"
TIMEZONE="Asia/Shanghai"
DATABASE_URL=""
ADMIN_USER=""
ADMIN_PASSWORD_FILE=""
NO_ADMIN=0
WITH_SIMULATOR=0
WITH_MQTT=0
NO_START=0

usage() {
  cat <<EOF
usage: install.sh [options]   (as root)

Installs the code and a venv under /opt/meterdesk, the state directory /var/lib/meterdesk
(0750), /etc/meterdesk/config.toml (only when missing), migrates the database, creates the
first admin, and installs, enables and starts meterdesk-web and meterdesk-worker.

  --listen HOST:PORT          console address for a new config.toml (default $LISTEN)
  --timezone ZONE             time zone for a new config.toml (default $TIMEZONE)
  --database-url URL          database for a new config.toml (default: SQLite in the state dir)
  --admin-user NAME           first admin's name (default: asked, or "admin" when not a terminal)
  --admin-password-file FILE  first admin's password (default: asked, or generated and printed)
  --no-admin                  do not create an admin
  --simulator                 also enable meterdesk-simulator (training sites only)
  --mqtt                      also enable meterdesk-mqtt (4G/NB meters pushing over MQTT)
  --no-start                  install and enable the units, start nothing
$(common_usage)
EOF
}

while [ $# -gt 0 ]; do
  parse_common_option "$@"
  if [ "$OPT_SHIFT" -gt 0 ]; then shift "$OPT_SHIFT"; continue; fi
  case "$1" in
    --listen) LISTEN="${2:?}"; shift 2 ;;
    --timezone) TIMEZONE="${2:?}"; shift 2 ;;
    --database-url) DATABASE_URL="${2:?}"; shift 2 ;;
    --admin-user) ADMIN_USER="${2:?}"; shift 2 ;;
    --admin-password-file) ADMIN_PASSWORD_FILE="${2:?}"; shift 2 ;;
    --no-admin) NO_ADMIN=1; shift ;;
    --simulator) WITH_SIMULATOR=1; shift ;;
    --mqtt) WITH_MQTT=1; shift ;;
    --no-start) NO_START=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
resolve_paths
[ -z "$ADMIN_PASSWORD_FILE" ] || [ -r "$ADMIN_PASSWORD_FILE" ] || die "cannot read $ADMIN_PASSWORD_FILE"
# Commands below run with the units' environment, never with MD_* from this shell.
for var in $(compgen -e); do case "$var" in MD_*) unset "$var" ;; esac; done

if [ "$REAL" = 1 ]; then
  say "meterdesk install: code $PREFIX, configuration $CONFIG_DIR, state $STATE_DIR"
else
  say "meterdesk install into $ROOT (no user, no chown, no systemctl)"
fi

# -- the service user ------------------------------------------------------------------------
if [ "$REAL" = 1 ]; then
  step "service user"
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "meterdesk appliance" "$SERVICE_USER"
    changed "created system user $SERVICE_USER"
  fi
  if getent group dialout >/dev/null && ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx dialout; then
    usermod -a -G dialout "$SERVICE_USER"
    changed "added $SERVICE_USER to dialout (SMS modem)"
  fi
fi
GROUP="$(service_group)"

# -- the code --------------------------------------------------------------------------------
step "code"
mkdir -p "$PREFIX/releases"
build_release
CURRENT="$(current_release)"
if [ -n "$CURRENT" ] && [ "$CURRENT" != "$RELEASE_DIR" ]; then
  say ""
  say "meterdesk $(basename "$CURRENT") is installed; this is $(basename "$RELEASE_DIR")."
  say "Upgrade with: $(dirname "${BASH_SOURCE[0]}")/upgrade.sh$( [ "$REAL" = 1 ] || printf ' --root %s' "$ROOT")"
  say "(it backs up, migrates, checks /healthz and rolls back on failure)"
  exit 3
fi

# -- configuration and state -----------------------------------------------------------------
step "configuration and state"
own() { if [ "$REAL" = 1 ]; then chown "$@"; fi; }
if [ ! -d "$CONFIG_DIR" ]; then
  mkdir -p "$CONFIG_DIR"
  changed "created $CONFIG_DIR"
fi
chmod 0750 "$CONFIG_DIR"
own "root:$GROUP" "$CONFIG_DIR"
if [ -e "$CONFIG_FILE" ]; then
  say "    kept $CONFIG_FILE"
else
  # Values inside TOML basic strings: backslashes and double quotes escaped.
  toml_escape() { local v="${1//\\/\\\\}"; printf '%s' "${v//\"/\\\"}"; }
  db_line="database_url = \"$(toml_escape "$DATABASE_URL")\""
  tpl="$(<"$RELEASE_DIR/packaging/config.toml.in")"
  tpl="${tpl//@STATE_DIR@/$(toml_escape "$STATE_DIR")}"
  tpl="${tpl//@DATABASE_LINE@/$db_line}"
  tpl="${tpl//@TIMEZONE@/$(toml_escape "$TIMEZONE")}"
  tpl="${tpl//@LISTEN@/$(toml_escape "$LISTEN")}"
  tpl="${tpl//@USER@/$SERVICE_USER}"
  tpl="${tpl//@GROUP@/$SERVICE_USER}"
  (umask 027 && printf '%s\n' "$tpl" > "$CONFIG_FILE.tmp")
  own "root:$GROUP" "$CONFIG_FILE.tmp"
  chmod 0640 "$CONFIG_FILE.tmp"
  mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
  changed "wrote $CONFIG_FILE"
fi

# The state directory named by the configuration (it may have been edited).
configured_state="$(cd / && env -i PATH=/usr/bin:/bin MD_CONFIG_FILE="$CONFIG_FILE" \
  "$RELEASE_DIR/venv/bin/meterdesk" config get state_dir)"
if [ "$configured_state" != "$STATE_DIR" ]; then
  STATE_DIR="$configured_state"
  say "    state_dir from $CONFIG_FILE: $STATE_DIR"
fi
backup_dir="$(cd / && env -i PATH=/usr/bin:/bin MD_CONFIG_FILE="$CONFIG_FILE" \
  "$RELEASE_DIR/venv/bin/meterdesk" config get backup_dir 2>/dev/null || true)"
for dir in "$STATE_DIR" "${backup_dir:-$STATE_DIR/backups}"; do
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    changed "created $dir (0750)"
  fi
  own "$SERVICE_USER:$GROUP" "$dir"
  chmod 0750 "$dir"
done

# -- the database ----------------------------------------------------------------------------
step "database"
if [ "$(current_release)" != "$RELEASE_DIR" ]; then
  switch_current "$RELEASE_DIR"
  changed "current -> releases/$(basename "$RELEASE_DIR")"
fi
migrated="$(md_in "$RELEASE_DIR" db upgrade)"
if [ "$migrated" = "database is up to date" ]; then
  say "    $migrated"
else
  changed "database: $migrated"
fi
if [ -f "$STATE_DIR/secret_key" ]; then
  chmod 0600 "$STATE_DIR/secret_key"
fi

# -- the first admin -------------------------------------------------------------------------
ADMIN_NOTE=""
if [ "$NO_ADMIN" = 0 ]; then
  step "first admin"
  if md_in "$RELEASE_DIR" user list | awk -F'\t' '$2 == "admin" && $3 == "active" {found=1} END {exit !found}'; then
    say "    an admin exists already"
  else
    password=""
    if [ -n "$ADMIN_PASSWORD_FILE" ]; then
      password="$(head -n1 "$ADMIN_PASSWORD_FILE")"
    fi
    if [ -z "$ADMIN_USER" ]; then
      if [ -t 0 ]; then
        read -r -p "    name of the first admin [admin]: " ADMIN_USER
      fi
      ADMIN_USER="${ADMIN_USER:-admin}"
    fi
    if [ -z "$password" ] && [ -t 0 ]; then
      while :; do
        read -r -s -p "    password for $ADMIN_USER (8+ characters): " password; echo
        read -r -s -p "    again: " again; echo
        [ "$password" = "$again" ] && [ ${#password} -ge 8 ] && break
        say "    the passwords differ or are shorter than 8 characters; again"
      done
    fi
    if [ -z "$password" ]; then
      password="$("$RELEASE_DIR/venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(12))')"
      (umask 077 && printf '%s\n' "$password" > "$STATE_DIR/initial-admin-password")
      own "$SERVICE_USER:$GROUP" "$STATE_DIR/initial-admin-password"
      ADMIN_NOTE="admin login: $ADMIN_USER / $password (also in $STATE_DIR/initial-admin-password; change it, then delete the file)"
    fi
    # The password travels in the environment (MD_NEW_PASSWORD), not on a command line.
    EXTRA_ENV=("MD_NEW_PASSWORD=$password")
    md_in "$RELEASE_DIR" user create "$ADMIN_USER" --role admin >/dev/null
    EXTRA_ENV=()
    changed "created admin $ADMIN_USER"
  fi
fi

# -- systemd units ---------------------------------------------------------------------------
step "systemd units"
render_units "$RELEASE_DIR"
UNITS=(meterdesk-web.service meterdesk-worker.service)
[ "$WITH_SIMULATOR" = 0 ] || UNITS+=(meterdesk-simulator.service)
[ "$WITH_MQTT" = 0 ] || UNITS+=(meterdesk-mqtt.service)
STARTED=""
if systemd_running; then
  [ "$UNITS_CHANGED" = 0 ] || systemctl daemon-reload
  for unit in "${UNITS[@]}"; do
    if ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
      systemctl enable --quiet "$unit"
      changed "enabled $unit"
    fi
  done
  if [ "$NO_START" = 0 ]; then
    for unit in "${UNITS[@]}"; do
      if ! systemctl is-active --quiet "$unit"; then
        systemctl start "$unit"
        changed "started $unit"
      elif [ "$UNITS_CHANGED" = 1 ]; then
        systemctl restart "$unit"
        changed "restarted $unit"
      fi
    done
    STARTED=1
  fi
elif [ "$REAL" = 1 ]; then
  say "    systemd is not running here: start the units when it is (systemctl enable --now ${UNITS[*]})"
else
  say "    units written to $UNIT_DIR (--root: not enabled, not started)"
fi

# -- the meterdesk command for people --------------------------------------------------------
# /usr/local/bin/meterdesk runs the installed meterdesk as the service user with the installed
# configuration, so that `sudo meterdesk check` or `sudo meterdesk backup now` just work.
step "meterdesk command"
BIN_DIR="$ROOT/usr/local/bin"
if [ "$REAL" = 1 ]; then
  run_line="exec runuser -u $SERVICE_USER -- env MD_CONFIG_FILE=$CONFIG_FILE $PREFIX/current/venv/bin/meterdesk \"\$@\""
else
  run_line="exec env MD_CONFIG_FILE=$CONFIG_FILE $PREFIX/current/venv/bin/meterdesk \"\$@\""
fi
wrapper="#!/bin/sh
# meterdesk as the $SERVICE_USER user with $CONFIG_FILE (written by packaging/install.sh).
if [ \"\$(id -un)\" = $SERVICE_USER ]; then
  exec env MD_CONFIG_FILE=$CONFIG_FILE $PREFIX/current/venv/bin/meterdesk \"\$@\"
fi
$run_line"
if [ -f "$BIN_DIR/meterdesk" ] && [ "$(<"$BIN_DIR/meterdesk")" = "$wrapper" ]; then
  say "    $BIN_DIR/meterdesk is up to date"
else
  mkdir -p "$BIN_DIR"
  printf '%s\n' "$wrapper" > "$BIN_DIR/meterdesk.tmp"
  chmod 0755 "$BIN_DIR/meterdesk.tmp"
  mv "$BIN_DIR/meterdesk.tmp" "$BIN_DIR/meterdesk"
  changed "wrote $BIN_DIR/meterdesk"
fi

# -- summary ---------------------------------------------------------------------------------
listen="$(config_value "$RELEASE_DIR" listen)"
host="${listen%:*}"
port="${listen##*:}"
case "$host" in
  0.0.0.0|"*"|""|"[::]") host="$(hostname -I 2>/dev/null | awk '{print $1}')"; host="${host:-127.0.0.1}" ;;
esac
say ""
if [ ${#CHANGES[@]} -eq 0 ]; then
  say "meterdesk $(basename "$RELEASE_DIR"): already installed, nothing changed."
else
  say "meterdesk $(basename "$RELEASE_DIR") installed:"
  for line in "${CHANGES[@]}"; do say "  - $line"; done
fi
[ -z "$ADMIN_NOTE" ] || say "$ADMIN_NOTE"
say "configuration: $CONFIG_FILE   state: $STATE_DIR   code: $PREFIX/current"
if [ -n "$STARTED" ]; then
  if as_service "$RELEASE_DIR/venv/bin/meterdesk" health --wait 30 >/dev/null; then
    say "running; open http://$host:$port/"
  else
    say "started, but /healthz does not answer yet: journalctl -u meterdesk-web -e"
  fi
else
  say "open http://$host:$port/ once meterdesk-web runs"
fi
say "then check the setup: $( [ "$REAL" = 1 ] && printf 'sudo meterdesk check' || printf '%s check' "$BIN_DIR/meterdesk")"
