#!/usr/bin/env bash
# Install everything deskpilot needs on Debian 12 (as root): system packages
# with apt-get, Python packages into .venv in the repo. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb openbox bubblewrap xauth x11-utils x11-xserver-utils
  python3 python3-venv python3-tk xterm fonts-dejavu-core
  xdotool scrot imagemagick   # used by the benchmark's peer path
  mousepad                    # a GTK app for the checks tests
  chromium                    # tests look at report.html and the live view in a real browser
  libreoffice-calc libreoffice-writer   # real office apps for examples/ and the workflow tests
  slirp4netns                 # --network: the apps' own network namespace, no way to the host's loopback
  iproute2                    # tests: a network namespace standing in for the outside world
  x11vnc novnc websockify     # --vnc: a person watches or takes over a sandbox (issue 23)
  libreoffice-gtk3            # LibreOffice publishes its widgets (AT-SPI) only through its GTK3 plugin
  dbus-daemon at-spi2-core    # the private accessibility (AT-SPI) bus of each sandbox
  python3-gi gir1.2-gtk-3.0   # the GTK3 form app of the accessibility tests
  python3-pyqt5               # the Qt5 form app of the accessibility tests
  gnumeric                    # a GTK3 spreadsheet for the accessibility tests
)
EXTRAS="${DESKPILOT_EXTRAS:-dev,transformers,ocr,office,ray,mcp,video}"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
pip_q() {  # quiet pip that still fails loudly
  local log; log="$(mktemp)"
  if ! .venv/bin/python -m pip install -q "$@" >"$log" 2>&1; then
    grep -v "is ignored" "$log" >&2; rm -f "$log"; return 1
  fi
  rm -f "$log"
}
echo "==> pip install -e .[$EXTRAS] (the first time takes a few minutes: torch is large)"
pip_q --upgrade pip
pip_q -e ".[$EXTRAS]"
# pyautogui pulls python3-xlib 0.15 into the same Xlib/ folder; 0.33 must win.
pip_q --force-reinstall --no-deps "python-xlib>=0.33"
.venv/bin/python -c "import deskpilot.agent, deskpilot.actions, deskpilot.perception, deskpilot.sandbox, deskpilot.model_backend, Xlib; assert Xlib.__version__ >= (0, 33)"
echo "==> ready: .venv/bin/deskpilot"
