# shellcheck shell=bash
# Shared by packaging/install.sh and packaging/upgrade.sh (sourced, not run).
#
# Layout (real install; with --root R every path below is under R instead, and the files
# written there name the R paths, so that a test can run the installed box from R):
#   /opt/meterdesk/releases/<version>-<hash>/   one release: the code, its own venv (venv/),
#                                               built browser assets, compiled translations
#   /opt/meterdesk/current -> releases/...      the release the units run
#   /etc/meterdesk/config.toml                  configuration (never overwritten)
#   /var/lib/meterdesk/                         state: database, queue, secret key, backups
#   /etc/systemd/system/meterdesk-*.service     units rendered from packaging/systemd/*.in

MD_NAME=meterdesk
SOURCE=""
ROOT=""
PREFIX=""
CONFIG_DIR=""
STATE_DIR=""
UNIT_DIR=""
SERVICE_USER="$MD_NAME"
PYTHON=""
VENV_FROM=""
WHEELHOUSE=""
KEEP_RELEASES=3
REAL=1                 # 0 with --root: no useradd/chown/systemctl, nothing outside the root
CHANGES=()             # what this run changed, for the summary

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
changed() { CHANGES+=("$*"); printf '    %s\n' "$*"; }
die() { printf 'meterdesk: %s\n' "$*" >&2; exit 1; }

# Common options; the caller handles what it does not know (returns the shift count in
# OPT_SHIFT, 0 when the option is not a common one).
parse_common_option() {
  OPT_SHIFT=0
  case "$1" in
    --source) SOURCE="${2:?--source needs a directory}"; OPT_SHIFT=2 ;;
    --root) ROOT="${2:?--root needs a directory}"; OPT_SHIFT=2 ;;
    --prefix) PREFIX="${2:?--prefix needs a directory}"; OPT_SHIFT=2 ;;
    --user) SERVICE_USER="${2:?--user needs a name}"; OPT_SHIFT=2 ;;
    --python) PYTHON="${2:?--python needs an interpreter}"; OPT_SHIFT=2 ;;
    --venv-from) VENV_FROM="${2:?--venv-from needs a venv}"; OPT_SHIFT=2 ;;
    --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a directory}"; OPT_SHIFT=2 ;;
    --keep-releases) KEEP_RELEASES="${2:?--keep-releases needs a number}"; OPT_SHIFT=2 ;;
  esac
}

common_usage() {
  cat <<'EOF'
  --source DIR         the meterdesk source tree to install (default: the one holding this script)
  --root DIR           install everything under DIR instead of / (tests, staging): no user is
                       created, nothing is chowned, systemctl is not run, nothing outside DIR
                       is touched; the written files name the paths under DIR
  --prefix DIR         code directory (default /opt/meterdesk, under --root if given)
  --user NAME          service user (default meterdesk)
  --python PY          Python 3.11+ for the venv (default: the newest python3.1x found)
  --wheelhouse DIR     install Python packages from this directory only (no registry):
                       make it on a connected machine with
                       pip wheel -w DIR '.[mysql,redis]' setuptools wheel
  --venv-from VENV     development/CI: reuse the packages of an existing venv (same Python)
                       instead of downloading them; the code is still installed by pip
  --keep-releases N    releases kept for rollback (default 3)
EOF
}

# Absolute, normalised paths; derive the defaults.
resolve_paths() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  SOURCE="$(cd "${SOURCE:-$here/..}" && pwd)" || die "no source directory"
  [ -f "$SOURCE/setup.cfg" ] && [ -d "$SOURCE/app" ] || die "$SOURCE is not a meterdesk source tree"
  if [ -n "$ROOT" ]; then
    REAL=0
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != "/" ] || { ROOT=""; REAL=1; }
  fi
  PREFIX="${PREFIX:-$ROOT/opt/$MD_NAME}"
  case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path" ;; esac
  if [ "$REAL" = 0 ]; then
    case "$PREFIX/" in "$ROOT"/*) ;; *) die "with --root, --prefix must lie inside $ROOT" ;; esac
  fi
  CONFIG_DIR="$ROOT/etc/$MD_NAME"
  CONFIG_FILE="$CONFIG_DIR/config.toml"
  STATE_DIR="${STATE_DIR:-$ROOT/var/lib/$MD_NAME}"
  UNIT_DIR="$ROOT/etc/systemd/system"
  if [ "$REAL" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0 ...), or give --root DIR for an install into a directory"
  fi
  if [ -n "$VENV_FROM" ]; then
    VENV_FROM="$(cd "$VENV_FROM" && pwd)" || die "--venv-from: no such venv"
    [ -x "$VENV_FROM/bin/python" ] || die "--venv-from $VENV_FROM is not a venv"
    PYTHON="${PYTHON:-$VENV_FROM/bin/python}"
  fi
  if [ -n "$WHEELHOUSE" ]; then
    WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)" || die "--wheelhouse: no such directory"
  fi
}

service_group() { if [ "$REAL" = 1 ]; then printf '%s' "$SERVICE_USER"; else id -gn; fi; }

# Python 3.11 or newer.
find_python() {
  local candidate
  if [ -n "$PYTHON" ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
      || die "$PYTHON is not Python 3.11 or newer"
    return
  fi
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null \
      && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$(command -v "$candidate")"
      return
    fi
  done
  die "Python 3.11+ with venv is needed: apt-get install python3 python3-venv (Debian 12), or python3.11 python3.11-venv (Ubuntu 22.04)"
}

# Run a command as the service user (real install) or as ourselves (--root), with the
# environment the units give it: nothing inherited but PATH and a UTF-8 locale.
# Extra variables for one call go in EXTRA_ENV (an array of NAME=value).
EXTRA_ENV=()
as_service() {
  local envs=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
              "LANG=C.UTF-8" "HOME=$STATE_DIR" "MD_CONFIG_FILE=$CONFIG_FILE" "PYTHONUNBUFFERED=1"
              "PYTHONDONTWRITEBYTECODE=1"
              ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"})
  if [ "$REAL" = 1 ] && [ "$(id -un)" != "$SERVICE_USER" ]; then
    (cd "$STATE_DIR" && umask 027 && runuser -u "$SERVICE_USER" -- "${envs[@]}" "$@")
  else
    (cd "$STATE_DIR" && umask 027 && "${envs[@]}" "$@")
  fi
}

# meterdesk from a given release: md_in RELEASE_DIR ARGS...
md_in() { local rel="$1"; shift; as_service "$rel/venv/bin/meterdesk" "$@"; }

# The files of the source tree a release is made of (relative paths, NUL-separated).
release_files() {
  local entry present=()
  for entry in app workers migrations templates packaging docs setup.cfg pyproject.toml \
               MANIFEST.in README.md CHANGELOG.md babel.cfg Makefile; do
    [ -e "$SOURCE/$entry" ] && present+=("$entry")
  done
  (cd "$SOURCE" && find "${present[@]}" \
      \( -name __pycache__ -o -name node_modules -o -path app/static/vendor \) -prune \
      -o -type f ! -name '*.pyc' ! -name '*.mo' -print0 | LC_ALL=C sort -z)
}

release_id() {
  local version hash
  version="$(sed -n 's/^version *= *//p' "$SOURCE/setup.cfg" | head -n1)"
  hash="$( (cd "$SOURCE" && release_files | xargs -0 sha256sum) | sha256sum | cut -c1-12)"
  printf '%s-%s' "${version:-0}" "$hash"
}

# Build the release for $SOURCE unless it is complete already; sets RELEASE_DIR.
build_release() {
  local id rel site
  id="$(release_id)"
  rel="$PREFIX/releases/$id"
  RELEASE_DIR="$rel"
  if [ -f "$rel/.complete" ]; then
    say "    release $id is already built"
    return
  fi
  step "building release $id in $rel"
  rm -rf "$rel"
  mkdir -p "$rel"
  (cd "$SOURCE" && release_files | tar --null -T - -cf -) | tar -C "$rel" -xf -
  if [ -d "$SOURCE/packaging/assets/node_modules" ]; then
    # Shipped node packages (an offline tarball): copied with their times, so no npm run.
    cp -a "$SOURCE/packaging/assets/node_modules" "$rel/packaging/assets/"
  fi

  find_python
  say "    venv ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
  local pip=("$rel/venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
  if [ -n "$VENV_FROM" ]; then
    # No pip of its own: the other venv's pip installs into it (pip --python).
    "$PYTHON" -m venv --without-pip "$rel/venv"
    pip=("$VENV_FROM/bin/python" -m pip --python "$rel/venv/bin/python" --disable-pip-version-check --no-input -q)
  else
    "$PYTHON" -m venv "$rel/venv"
  fi
  if [ -n "$VENV_FROM" ]; then
    site="$("$VENV_FROM/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n' "$site" > "$("$rel/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/meterdesk-venv-from.pth"
    say "    packages from $VENV_FROM"
    if "$VENV_FROM/bin/python" -c 'import setuptools, wheel' 2>/dev/null; then
      "${pip[@]}" install --no-deps --no-build-isolation --no-index -e "$rel"
    else  # the build backend (setuptools, wheel) comes from the package index or pip's cache
      "${pip[@]}" install --no-deps -e "$rel"
    fi
  elif [ -n "$WHEELHOUSE" ]; then
    say "    packages from $WHEELHOUSE"
    "${pip[@]}" install --no-index --find-links "$WHEELHOUSE" -e "$rel[mysql,redis]"
  else
    say "    packages from the package index (pip; set a mirror in /etc/pip.conf if needed)"
    "${pip[@]}" install -e "$rel[mysql,redis]"
  fi

  say "    browser assets"
  if [ -d "$rel/packaging/assets/node_modules" ] || command -v npm >/dev/null; then
    bash "$rel/packaging/assets/build.sh" >/dev/null
  elif [ -f "$SOURCE/app/static/vendor/htmx.min.js" ]; then
    mkdir -p "$rel/app/static/vendor"
    cp -p "$SOURCE/app/static/vendor/"* "$rel/app/static/vendor/"
  else
    die "npm is needed to build the browser assets (apt-get install npm), or ship packaging/assets/node_modules"
  fi
  say "    translations"
  "$rel/venv/bin/python" -m babel.messages.frontend -q compile -d "$rel/app/translations"
  "$rel/venv/bin/python" -m compileall -q -j 0 "$rel/app" "$rel/workers" "$rel/migrations" >/dev/null
  chmod -R go-w "$rel"
  printf '%s built %s from %s\n' "$id" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SOURCE" > "$rel/.complete"
  changed "built release $id"
}

# Point $PREFIX/current at a release (atomic rename of a new symlink).
switch_current() {
  local rel="$1"
  ln -sfn "releases/$(basename "$rel")" "$PREFIX/.current.new"
  mv -T "$PREFIX/.current.new" "$PREFIX/current"
}

current_release() {
  if [ -L "$PREFIX/current" ]; then readlink -f "$PREFIX/current"; fi
}

# One setting as the installed box sees it (config file, defaults).
config_value() { md_in "$1" config get "$2"; }

# Render the units of a release into $UNIT_DIR; sets UNITS_CHANGED=1 when a file changed.
render_units() {
  local rel="$1" listen port caps rw backup_dir tpl unit out
  listen="$(config_value "$rel" listen)"
  port="${listen##*:}"
  if [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -lt 1024 ]; then
    caps=$'AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE'
  else
    caps="CapabilityBoundingSet="
  fi
  rw="$(config_value "$rel" state_dir)"
  backup_dir="$(config_value "$rel" backup_dir 2>/dev/null || true)"
  # A backup_dir outside the state directory must be writable too ("-": a missing one does
  # not stop the unit from starting; the nightly backup then reports it).
  case "$backup_dir" in ""|"$rw"/*) ;; *) rw="$rw -$backup_dir" ;; esac
  UNITS_CHANGED=0
  mkdir -p "$UNIT_DIR"
  for tpl in "$rel"/packaging/systemd/*.service.in; do
    unit="$(basename "$tpl" .in)"
    out="$(<"$tpl")"
    out="${out//@PREFIX@/$PREFIX}"
    out="${out//@USER@/$SERVICE_USER}"
    out="${out//@GROUP@/$SERVICE_USER}"
    out="${out//@CONFIG_FILE@/$CONFIG_FILE}"
    out="${out//@CONFIG_DIR@/$CONFIG_DIR}"
    out="${out//@STATE_DIR@/$STATE_DIR}"
    out="${out//@RW_PATHS@/$rw}"
    out="${out//@WEB_CAPABILITIES@/$caps}"
    if [ -f "$UNIT_DIR/$unit" ] && [ "$(<"$UNIT_DIR/$unit")" = "$out" ]; then
      continue
    fi
    printf '%s\n' "$out" > "$UNIT_DIR/$unit.tmp"
    chmod 0644 "$UNIT_DIR/$unit.tmp"
    mv "$UNIT_DIR/$unit.tmp" "$UNIT_DIR/$unit"
    UNITS_CHANGED=1
    changed "wrote $UNIT_DIR/$unit"
  done
}

systemd_running() { [ "$REAL" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

# Keep the newest $KEEP_RELEASES releases (never the current one or $1).
prune_releases() {
  local keep_also="${1:-}" current rel n=0
  current="$(current_release)"
  while IFS= read -r rel; do
    [ -n "$rel" ] || continue
    n=$((n + 1))
    if [ "$n" -le "$KEEP_RELEASES" ] || [ "$rel" = "$current" ] || [ "$rel" = "$keep_also" ]; then
      continue
    fi
    rm -rf "$rel"
    changed "removed old release $(basename "$rel")"
  done < <(find "$PREFIX/releases" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' 2>/dev/null \
           | sort -rn | cut -d' ' -f2-)
}
