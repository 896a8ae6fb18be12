#!/usr/bin/env bash
# Set up a fresh Debian 12 or Ubuntu 24.04 machine to build the appliance ISO, and with
# --test, to run the whole test suite. Idempotent; safe to re-run.
#
#   ci/setup.sh          apt packages for building + the .venv virtualenv
#   ci/setup.sh --test   also the packages the tests use (xorriso, qemu, OVMF, GRUB, ...)
#
# The virtualenv uses the distro python3 with --system-site-packages so that the code is
# tested against the distro's python3-yaml, python3-requests and python3-jsonschema, the
# versions the appliance runs on.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

build_packages=(python3 python3-venv python3-pip python3-yaml python3-requests
                python3-jsonschema ca-certificates
                # gpgv checks Ubuntu's signed SHA256SUMS; gpg signs the output (--sign-key)
                gpgv gnupg)
test_packages=(xorriso qemu-system-x86 seabios ipxe-qemu ovmf time grub-pc-bin
               grub-efi-amd64-bin grub-common mtools dosfstools busybox-static kmod cpio
               openssl iproute2 mmdebstrap systemd-container chromium fonts-dejavu-core tmux
               e2fsprogs qemu-utils git
               # the admin credentials' tests: sshd -t checks the SSH drop-in, ssh-keygen
               # makes and lists keys, chpasswd (passwd) sets the hash in a copied root
               openssh-server openssh-client passwd
               # zbarimg decodes the QR codes the console draws (tests/console/test_qr.py)
               zbar-tools
               # the Network entry's tests render with the real netplan generate
               netplan.io
               # the CNCF distribution registry (2.8) the OCI release source is tested against
               docker-registry
               # Playwright's node driver needs it; chromium does not pull it in
               libatomic1)
. /etc/os-release
case "$ID" in
  ubuntu) kernel_package=linux-image-generic ;;
  *) kernel_package=linux-image-amd64 ;;
esac

packages=("${build_packages[@]}")
if [ "${1:-}" = "--test" ]; then
  packages+=("${test_packages[@]}" "$kernel_package")
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# The registry package enables a service on :5000 with its own config; the tests start their
# own registries on free ports, so the packaged one is kept from running.
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  $SUDO systemctl disable --now --quiet docker-registry
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
echo "==> pip install -e .${extras}"
.venv/bin/pip install -q --disable-pip-version-check -e ".${extras}"

# Test tools whose dependencies clash with the distro packages the appliance code runs on
# (schemathesis needs jsonschema >= 4.18, the appliance the distro's 4.10): their own
# virtualenv, run as commands (tests/web/test_schemathesis.py).
if [ "${1:-}" = "--test" ]; then
  [ -x .venv-tools/bin/python ] || /usr/bin/python3 -m venv .venv-tools
  .venv-tools/bin/pip install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

# The real Kubernetes control plane and Flux controllers the tests run
# (tests/support/apiserver.py, tests/support/flux_controllers.py): kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl and kine, and the Flux controllers the
# module proxy serves at the pinned Flux's versions, built from the Go module proxy at ci/k8s's
# pins into a cache outside the checkout (a cold build takes minutes, a warm run well under a
# second).
if [ "${1:-}" = "--test" ]; then
  if command -v go >/dev/null; then
    ci/k8s/build.sh
    ci/k8s/build-flux.sh
  else
    echo "==> no Go toolchain: the real API server tests will skip (tests/README.md)"
  fi
fi
