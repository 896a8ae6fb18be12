#!/usr/bin/env bash
# Prove the README's first command works on a fresh Debian 12 machine, as a new user runs it.
#
#   ci/fresh-machine.sh            build the appliance ISO in a fresh root, then verify it
#   ci/fresh-machine.sh --tests    also run the README's second command (ci/test.sh) there
#                                  and report its outcome (the exit status stays the first's)
#
# What it does, and why:
#   1. A fresh Debian 12 root from mmdebstrap (variant "important" + sudo, ca-certificates
#      and git: what a fresh server has, none of our packages), built from the
#      host's own apt sources and cached under /var/tmp/alga-fresh-machine, keyed by its
#      inputs. Every run unpacks a pristine copy, so nothing leaks between runs.
#   2. A `git clone` of HEAD into /root/alga, because that is what a new user has (not
#      this working tree with its uncommitted edits, .venv or caches).
#   3. The Ubuntu ISO is a replica from ci/replica.py, published under the file name that
#      isobuild/download.py pins, with a SHA256SUMS signed by a throwaway key, on a
#      loopback-only HTTPS server with a throwaway CA; ISOBUILD_UBUNTU_MIRROR,
#      ISOBUILD_CA_BUNDLE and the signing-key pin override point isobuild at them.
#      So the default download path (no --base-iso) is exercised without the internet.
#   4. The README's commands, read from README.md itself, run verbatim in systemd-nspawn
#      on the host network (apt and PyPI work; 127.0.0.1 reaches the mirror), each
#      &&-separated part timed, then `isobuild verify` on the result.
# Needs root, mmdebstrap, systemd-container, python3, openssl and what ci/replica.py needs
# (xorriso, grub-pc-bin, grub-efi-amd64-bin, mtools, dosfstools, busybox-static, kmod and
# a kernel: `ci/setup.sh --test` installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

run_tests=0
case "${1:-}" in
  "") ;;
  --tests) run_tests=1 ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (mmdebstrap, systemd-nspawn)" >&2; exit 2; }

CACHE=/var/tmp/alga-fresh-machine
RUN=$CACHE/run          # the last run's root and logs, kept for a look afterwards
SUITE=bookworm
VARIANT=important
# git: the user cloned this checkout on the machine (and tests/docs/test_docs.py runs git).
INCLUDE=sudo,ca-certificates,git
RECIPE=v1               # bump when the rootfs recipe changes in a way the key misses

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "==> $*"; }
timings=()
record() { timings+=("$(printf '%-56s %8s s' "$1" "$2")"); say "$1: $2 s"; }

# --- 1. The fresh root --------------------------------------------------------------------

# The mirror lines for mmdebstrap, from the host's apt sources (one-line and deb822), so no
# registry host is written here: only Debian's own bookworm suites, as a fresh install has.
host_mirror_lines() {
  python3 - "$SUITE" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
wanted = {suite, f"{suite}-updates", f"{suite}-security"}
lines = []
def add(uri, suites, components):
    for s in suites:
        if s in wanted:
            line = f"deb {uri} {s} {' '.join(components)}"
            if line not in lines:
                lines.append(line)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        text = open(path).read()
    except FileNotFoundError:
        continue
    for raw in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", raw.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            add(words[1], [words[2]], words[3:])
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields, key = {}, None
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1].isspace() and key:
                fields[key] += " " + raw.strip()
            elif ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            add(uri, fields.get("suites", "").split(), fields.get("components", "").split())
if not lines:
    sys.exit(f"no {suite} sources in the host's apt config")
print("\n".join(lines))
EOF
}

mapfile -t mirrors < <(host_mirror_lines)
key=$(printf '%s\n' "$SUITE" "$VARIANT" "$INCLUDE" "$RECIPE" "${mirrors[@]}" \
      | sha256sum | cut -c1-16)
tarball=$CACHE/debian-$SUITE-$VARIANT-$key.tar
mkdir -p "$CACHE"
if [ ! -f "$tarball" ]; then
  say "mmdebstrap $SUITE ($VARIANT, +$INCLUDE) from: ${mirrors[*]}"
  start=$(now)
  mmdebstrap --quiet --variant="$VARIANT" --include="$INCLUDE" "$SUITE" \
    "$tarball.partial.tar" "${mirrors[@]}"
  mv "$tarball.partial.tar" "$tarball"
  record "rootfs build (mmdebstrap, cached afterwards)" "$(elapsed "$start")"
else
  say "cached root $tarball"
fi
# Roots for other inputs are stale: keep only this one.
find "$CACHE" -maxdepth 1 -name 'debian-*.tar*' ! -name "${tarball##*/}" -delete

# A pristine copy for this run; the previous run's is replaced.
rm -rf "$RUN"
mkdir -p "$RUN/root" "$RUN/mirror/ubuntu" "$RUN/pki"
start=$(now)
tar -C "$RUN/root" -xf "$tarball"
record "unpack fresh root" "$(elapsed "$start")"
ROOT=$RUN/root
# A booted Debian has a machine ID (systemd writes it on first boot); mmdebstrap leaves it
# empty, and systemd-nspawn inside the root (the real-systemd test tier) needs one.
tr -d - < /proc/sys/kernel/random/uuid > "$ROOT/etc/machine-id"

# This host's network intercepts TLS with a site CA in /usr/local/share/ca-certificates;
# any machine on this network gets that CA from its admin, so the fresh root gets it too
# (ca-certificates picks it up, now or when ci/setup.sh installs it). Nothing else is copied.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  if [ -x "$ROOT/usr/sbin/update-ca-certificates" ]; then
    chroot "$ROOT" update-ca-certificates >/dev/null 2>&1
  fi
fi

# --- 2. The checkout, as a new user has it ------------------------------------------------

head=$(git rev-parse HEAD)
say "git clone of HEAD $head into /root/alga"
git clone --quiet --no-local "$REPO" "$ROOT/root/alga"
git -C "$ROOT/root/alga" checkout --quiet --detach "$head"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  say "note: the working tree has uncommitted changes; they are not in the fresh root"
fi

# --- 3. The Ubuntu mirror: a replica ISO on loopback HTTPS ----------------------------------

iso_name=$(sed -n 's/^UBUNTU_RELEASE = "\(.*\)"$/ubuntu-\1-live-server-amd64.iso/p' \
           isobuild/download.py)
[ -n "$iso_name" ] || { echo "cannot read the pinned ISO name from isobuild/download.py" >&2; exit 1; }
# The newest release replica.py knows, with the HWE entry as 24.04.2+ has.
replica_release=$(python3 -c 'import sys; sys.path.insert(0, "ci"); import replica; print(max(replica.BUILD_SERIALS, key=lambda r: [int(x) for x in r.split(".")]))')
say "replica Ubuntu $replica_release ISO as $iso_name"
start=$(now)
python3 ci/replica.py --release "$replica_release" --hwe "$RUN/mirror/ubuntu/$iso_name" \
  --workdir "$RUN/replica-work" >/dev/null
rm -rf "$RUN/replica-work"
(cd "$RUN/mirror/ubuntu" && sha256sum --binary "$iso_name" > SHA256SUMS)
record "replica ISO (ci/replica.py)" "$(elapsed "$start")"

# A throwaway key signs SHA256SUMS in Canonical's stead; the build trusts it only through the
# pin's override variables, as tests/support/mirror.py does (docs/release-engineering.md).
gpg_home="$RUN/gnupg"
mkdir -m 700 "$gpg_home"
fresh_gpg() { gpg --homedir "$gpg_home" --batch "$@"; }
fresh_gpg --quick-gen-key --passphrase '' "fresh-machine <fresh-machine@isobuild.test>" \
  ed25519 sign never 2>/dev/null
signing_fingerprint=$(fresh_gpg --with-colons --list-keys | awk -F: '/^fpr:/ {print $10; exit}')
fresh_gpg --armor --export "$signing_fingerprint" > "$ROOT/root/mirror-signing-key.asc"
fresh_gpg --armor --detach-sign --output "$RUN/mirror/ubuntu/SHA256SUMS.gpg" \
  "$RUN/mirror/ubuntu/SHA256SUMS"
gpgconf --homedir "$gpg_home" --kill gpg-agent

# A throwaway CA and a certificate for 127.0.0.1, as tests/isobuild/test_download.py makes them.
pki() { openssl "$@" >/dev/null 2>&1; }
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
(cd "$RUN/pki"
 pki req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=alga fresh-machine CA"
 pki req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=127.0.0.1
 echo "subjectAltName=IP:127.0.0.1" > san.ext
 pki x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
   -days 2 -extfile san.ext)
cp "$RUN/pki/ca.pem" "$ROOT/root/mirror-ca.pem"

# The server listens on 127.0.0.1 only, on a free port it writes down; it logs each request
# so that the download can be seen to have happened.
python3 - "$RUN/mirror" "$RUN/pki" "$RUN/mirror.port" "$RUN/mirror.log" <<'EOF' &
import http.server, ssl, sys
docroot, pki, port_file, log = sys.argv[1:]
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=docroot, **kwargs)
    def log_message(self, format, *args):
        with open(log, "a") as fp:
            fp.write((format % args) + "\n")
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{pki}/server.pem", f"{pki}/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".part", "w") as fp:
    fp.write(str(server.server_address[1]))
import os; os.replace(port_file + ".part", port_file)
server.serve_forever()
EOF
server_pid=$!
# shellcheck disable=SC2317  # called by the trap
cleanup() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$RUN/mirror.port" ] && break; sleep 0.1; done
[ -s "$RUN/mirror.port" ] || { echo "the mirror did not start" >&2; exit 1; }
mirror_url="https://127.0.0.1:$(cat "$RUN/mirror.port")/ubuntu/"
say "mirror $mirror_url (pid $server_pid)"

# --- 4. The README's commands in the fresh root -------------------------------------------

# The README's shell blocks, verbatim: the first builds the ISO, the second runs the tests.
readme_command() {
  awk -v want="$1" '/^```sh$/ {n++; inside=1; next} /^```$/ {inside=0} inside && n==want' README.md
}
build_command=$(readme_command 1)
test_command=$(readme_command 2)
say "README command 1: $build_command"
case "$build_command" in
  *"isobuild build"*) ;;
  *) echo "README's first command is not the ISO build any more: update this script" >&2; exit 1 ;;
esac

# Runs one shell command in the fresh root as root at a login shell would, in the checkout,
# on the host network, non-interactively. --register=no --keep-unit: no machined or system
# bus is needed (there may be none, e.g. when this host is itself a container). Like root
# on a real machine: every capability (the tests make network namespaces and veths), and
# /tmp on the root's disk, not nspawn's default tmpfs of 10 % of RAM (the tests fill it;
# a bind mount on /tmp does not replace that tmpfs, SYSTEMD_NSPAWN_TMPFS_TMP=0 does).
in_root() {
  SYSTEMD_NSPAWN_TMPFS_TMP=0 \
  systemd-nspawn --quiet --register=no --keep-unit --as-pid2 --pipe -D "$ROOT" \
    --capability=all \
    --resolv-conf=copy-host --chdir=/root/alga \
    --setenv=HOME=/root --setenv=LANG=C.UTF-8 \
    --setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --setenv=ISOBUILD_UBUNTU_MIRROR="$mirror_url" \
    --setenv=ISOBUILD_CA_BUNDLE=/root/mirror-ca.pem \
    --setenv=ISOBUILD_UBUNTU_SIGNING_KEY=/root/mirror-signing-key.asc \
    --setenv=ISOBUILD_UBUNTU_SIGNING_FINGERPRINT="$signing_fingerprint" \
    ${PYTEST_ADDOPTS:+--setenv=PYTEST_ADDOPTS="$PYTEST_ADDOPTS"} \
    /bin/bash -c "$1" </dev/null
}

# Each &&-separated part of the README's command is run and timed in turn, which is what
# `a && b` does.
status=0
mapfile -t parts < <(printf '%s\n' "${build_command// && /$'\n'}")
for part in "${parts[@]}"; do
  say "[fresh root] $part"
  start=$(now)
  if ! in_root "$part" 2>&1 | tee -a "$RUN/build.log"; then status=1; fi
  record "$part" "$(elapsed "$start")"
  [ "$status" -eq 0 ] || { say "FAILED: $part (log: $RUN/build.log)"; break; }
done

if [ "$status" -eq 0 ]; then
  say "mirror requests:"; sed 's/^/    /' "$RUN/mirror.log"
  grep -q "GET /ubuntu/$iso_name " "$RUN/mirror.log" \
    || { say "FAILED: the ISO was not downloaded from the mirror"; status=1; }
fi
if [ "$status" -eq 0 ]; then
  say "[fresh root] .venv/bin/isobuild verify alga-appliance.iso"
  start=$(now)
  if ! in_root ".venv/bin/isobuild verify alga-appliance.iso" 2>&1 | tee -a "$RUN/verify.log"
  then status=1; say "FAILED: isobuild verify (log: $RUN/verify.log)"; fi
  record "isobuild verify" "$(elapsed "$start")"
  iso=$ROOT/root/alga/alga-appliance.iso
  [ -f "$iso" ] && say "ISO size: $(stat -c %s "$iso") bytes ($(du -h "$iso" | cut -f1))"
fi

if [ "$status" -eq 0 ] && [ "$run_tests" -eq 1 ]; then
  say "[fresh root] README command 2: $test_command (log: $RUN/tests.log)"
  # -rfEs: the summary names failures, errors and skip reasons (ci/test.sh passes no -r).
  export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:--rfEs}"
  start=$(now)
  test_status=0
  in_root "$test_command" > "$RUN/tests.log" 2>&1 || test_status=$?
  record "$test_command (exit $test_status)" "$(elapsed "$start")"
  # Reported, not judged: nested containers, netns and qemu may not work in a container.
  if grep -q "short test summary info" "$RUN/tests.log"; then
    sed -n '/short test summary info/,$p' "$RUN/tests.log"
  else
    tail -n 30 "$RUN/tests.log"
  fi
fi

echo
say "timings"
printf '    %s\n' "${timings[@]}"
if [ "$status" -eq 0 ]; then say "README's first command: OK"
else say "README's first command: FAILED"; fi
exit "$status"
