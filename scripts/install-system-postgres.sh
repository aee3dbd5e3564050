#!/usr/bin/env bash
# Install the system PostgreSQL 15 pieces pgpatterns needs (Debian/Ubuntu, run as root):
# postgresql-15 (ships btree_gist, ltree, pg_trgm), PostGIS 3, pg_partman, pg_cron, server
# headers, build tools, and pgvector >= 0.8.0 built from Debian's trixie source package (not
# packaged for bookworm). pg_cron only works once preloaded (shared_preload_libraries): the
# throwaway test cluster (src/pgpatterns/testing/cluster.py) sets that when the library exists.
# Citus (AGPL, not packaged by Debian) is built from the source archive named by
# PGPATTERNS_CITUS_SOURCE (a citus-X.Y.Z.tar.gz release archive; .ci/run sets it) and skipped,
# saying so, when that variable is empty.
# Idempotent: installs only what is missing. Never creates, starts, stops or changes a cluster.
set -euo pipefail

PG=15
PG_CONFIG=/usr/lib/postgresql/$PG/bin/pg_config
EXT_DIR=/usr/share/postgresql/$PG/extension
LIB_DIR=/usr/lib/postgresql/$PG/lib
PGVECTOR_SRC_VERSION=0.8.0-1
PGVECTOR_MIN=0.8.0
PACKAGES=(postgresql-$PG postgresql-$PG-postgis-3 postgresql-$PG-partman postgresql-$PG-cron
          postgresql-server-dev-$PG make gcc libc6-dev debian-archive-keyring)
TRIXIE_SRC=/etc/apt/sources.list.d/pgpatterns-trixie-src.sources
NO_CLUSTER_CONF=/etc/postgresql-common/createcluster.d/pgpatterns-no-main-cluster.conf
POLICY=/usr/sbin/policy-rc.d
export DEBIAN_FRONTEND=noninteractive

die() { echo "install-system-postgres: error: $*" >&2; exit 1; }
say() { echo "$*"; }

[[ $EUID -eq 0 ]] || die "must run as root (try: sudo $0)"
command -v apt-get >/dev/null && [[ -f /etc/debian_version ]] ||
  die "needs a Debian-like system (apt-get and /etc/debian_version); install PostgreSQL $PG, PostGIS and pgvector >= $PGVECTOR_MIN by hand"

# --- temporary state, always undone on exit -------------------------------------------
TMP_DIR="" OWN_POLICY="" OWN_NO_CLUSTER="" OWN_CC_DIR=""
cleanup() {
  [[ -n $TMP_DIR ]] && rm -rf "$TMP_DIR"
  if [[ -n $OWN_POLICY ]]; then rm -f "$POLICY"; mv -f "$POLICY.pgpatterns-saved" "$POLICY" 2>/dev/null; fi
  [[ -n $OWN_NO_CLUSTER ]] && rm -f "$NO_CLUSTER_CONF"
  [[ -n $OWN_CC_DIR ]] && rmdir "${NO_CLUSTER_CONF%/*}" 2>/dev/null
  return 0
}
trap cleanup EXIT

installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]; }

# --- what is missing? ----------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  if installed "$p"; then say "$p: already installed"; else missing+=("$p"); fi
done

need_vector=yes
if [[ -f $EXT_DIR/vector.control && -f $LIB_DIR/vector.so ]]; then
  have=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$EXT_DIR/vector.control")
  if dpkg --compare-versions "${have:-0}" ge "$PGVECTOR_MIN"; then
    need_vector=""; say "pgvector $have: already installed in $LIB_DIR"
  elif owner=$(dpkg -S "$EXT_DIR/vector.control" 2>/dev/null); then
    die "pgvector ${have:-?} from package ${owner%%:*} is older than $PGVECTOR_MIN; remove or upgrade that package, then rerun"
  else
    say "pgvector ${have:-?}: older than $PGVECTOR_MIN, will rebuild"
  fi
fi

# --- Citus from a source archive (PGPATTERNS_CITUS_SOURCE) ---------------------------
CITUS_SRC=${PGPATTERNS_CITUS_SOURCE:-}
CITUS_BUILD_DEPS=(libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev)
need_citus="" citus_version=""
citus_installed() {  # the release version compiled into citus.so ("Citus 13.2.2 on ..."), or nothing
  [[ -f $LIB_DIR/citus.so && -f $EXT_DIR/citus.control ]] || return 0
  grep -a -o -m1 'Citus [0-9][0-9.]*[0-9]' "$LIB_DIR/citus.so" | head -n1 | cut -d' ' -f2
}
if [[ -z $CITUS_SRC ]]; then
  say "citus: PGPATTERNS_CITUS_SOURCE is not set, so Citus is NOT built or installed" \
      "(set it to a citus-X.Y.Z.tar.gz source archive; citus-marked tests skip without it)"
else
  [[ -f $CITUS_SRC ]] || die "PGPATTERNS_CITUS_SOURCE=$CITUS_SRC: no such file (expected a citus-X.Y.Z.tar.gz source archive)"
  citus_version=$(tar -xzOf "$CITUS_SRC" --wildcards '*/configure' 2>/dev/null |
                  sed -n "s/^PACKAGE_VERSION='\([^']*\)'/\1/p" | head -n1) || true
  [[ -n $citus_version ]] ||
    die "PGPATTERNS_CITUS_SOURCE=$CITUS_SRC: no configure with PACKAGE_VERSION inside; is it a Citus release source archive?"
  have_citus=$(citus_installed)
  if [[ $have_citus == "$citus_version" ]]; then
    say "citus $citus_version: already installed in $LIB_DIR"
  else
    need_citus=yes
    say "citus: ${have_citus:-not installed}, will build $citus_version from $CITUS_SRC (about 4 min on 2 cores)"
    for p in "${CITUS_BUILD_DEPS[@]}"; do installed "$p" || missing+=("$p"); done
  fi
fi

# --- apt: one update, then install only what is missing -------------------------------
if [[ -n $need_vector && ! -f $TRIXIE_SRC ]]; then
  cat >"$TRIXIE_SRC" <<'EOF'
# Added by pgpatterns scripts/install-system-postgres.sh: source packages only (pgvector build).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  say "apt: added trixie deb-src entry $TRIXIE_SRC"
fi

if (( ${#missing[@]} )) || [[ -n $need_vector ]]; then
  apt-get update -qq
  say "apt: package lists updated"
fi

if (( ${#missing[@]} )); then
  # Keep headers at the installed server's version: apt would otherwise upgrade the server too.
  srv=$(installed postgresql-$PG && dpkg-query -W -f='${Version}' postgresql-$PG || true)
  for i in "${!missing[@]}"; do
    if [[ ${missing[i]} == postgresql-server-dev-$PG && -n $srv &&
          $(apt-cache madison "${missing[i]}") == *" $srv "* ]]; then missing[i]+="=$srv"; fi
  done
  upgrades=$(apt-get -s install --no-install-recommends "${missing[@]}" | sed -n 's/^Inst \([^ ]*\) \[.*/\1/p')
  if [[ -n $upgrades ]]; then say "apt: note: this also upgrades" $upgrades; fi
  # Do not let the package scripts create or start any cluster (both undone by the trap).
  [[ -e $POLICY && ! -e $POLICY.pgpatterns-saved ]] && mv "$POLICY" "$POLICY.pgpatterns-saved"
  OWN_POLICY=yes
  printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod 755 "$POLICY"
  if ! grep -qsE '^[[:space:]]*create_main_cluster' /etc/postgresql-common/createcluster.conf \
       /etc/postgresql-common/createcluster.d/*.conf; then
    [[ -d ${NO_CLUSTER_CONF%/*} ]] || { mkdir -p "${NO_CLUSTER_CONF%/*}"; OWN_CC_DIR=yes; }
    echo "create_main_cluster = false" >"$NO_CLUSTER_CONF"
    OWN_NO_CLUSTER=yes
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "apt: installed ${missing[*]}"
fi

# --- pgvector from Debian's source package -------------------------------------------
if [[ -n $need_vector ]]; then
  TMP_DIR=$(mktemp -d)
  chown _apt "$TMP_DIR" 2>/dev/null || true   # lets apt download sandboxed as _apt
  ( cd "$TMP_DIR"
    apt-get source -qq --download-only --tar-only "pgvector=$PGVECTOR_SRC_VERSION" >/dev/null
    orig=$(ls pgvector_*.orig.tar.*)
    mkdir src && tar -xf "$orig" -C src --strip-components=1
    cd src
    make -s OPTFLAGS="" PG_CONFIG="$PG_CONFIG" >/dev/null
    make -s install PG_CONFIG="$PG_CONFIG" >/dev/null )
  say "pgvector ${PGVECTOR_SRC_VERSION%-*}: built and installed into /usr/lib/postgresql/$PG"
  vector_status=built
fi

# --- Citus build ----------------------------------------------------------------------
if [[ -n $need_citus ]]; then
  [[ -n $TMP_DIR ]] || TMP_DIR=$(mktemp -d)
  ( mkdir "$TMP_DIR/citus" && cd "$TMP_DIR/citus"
    tar -xzf "$CITUS_SRC" --strip-components=1
    ./configure -q PG_CONFIG="$PG_CONFIG" >/dev/null
    # with_llvm=no: no LLVM bitcode for JIT inlining (Debian's PostgreSQL is built with LLVM,
    # and PGXS would compile every file a second time with clang; Citus does not need it)
    make -s -j"$(nproc)" with_llvm=no >/dev/null 2>&1 || make -j1 with_llvm=no   # verbose log on failure
    make -s install with_llvm=no >/dev/null )
  [[ $(citus_installed) == "$citus_version" ]] ||
    die "citus $citus_version: built, but $LIB_DIR/citus.so reports '$(citus_installed)'"
  say "citus $citus_version: built and installed into /usr/lib/postgresql/$PG"
fi

# --- verify (files only; no cluster needed) --------------------------------------------
for f in "$EXT_DIR"/{vector,postgis,btree_gist,ltree,pg_partman,pg_cron}.control \
         "$LIB_DIR/vector.so" "$LIB_DIR/pg_cron.so"; do
  [[ -f $f ]] || die "$f is missing after install; rerun, or check the apt output above"
done
vec=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$EXT_DIR/vector.control")
pgis=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$EXT_DIR/postgis.control")
say "done: PostgreSQL $PG ready for pgpatterns (vector $vec, postgis $pgis, btree_gist, ltree," \
    "pg_partman, pg_cron);" \
    "${#missing[@]} package(s) installed, pgvector ${vector_status:-already there}," \
    "citus ${citus_version:-not requested (PGPATTERNS_CITUS_SOURCE unset)}"
