#!/usr/bin/env bash
# Install the Debian packages the test suite needs beyond the Python virtualenv:
#   - GStreamer's RTSP server with the system python3-gi bindings (the live RTSP test server,
#     tests/support/rtsp_server.py, runs under /usr/bin/python3);
#   - xvfb and the XCB libraries Qt's xcb platform plugin loads, for the GUI in a real X display.
# Idempotent: when everything is present it changes nothing and touches no network.
# Without apt-get or root rights it only warns; the tests that need these packages skip.
set -euo pipefail

PACKAGES=(
    gir1.2-gst-rtsp-server-1.0
    python3-gi
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    xvfb
    libxcb-icccm4
    libxcb-keysyms1
    libxcb-cursor0
)

missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$package")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install_system_deps: all system packages present"
    exit 0
fi

echo "install_system_deps: missing: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_deps: warning: no apt-get here; install the packages above by hand" >&2
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install_system_deps: warning: not root and no password-less sudo; RTSP tests will be skipped" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q "${missing[@]}"
echo "install_system_deps: installed ${missing[*]}"
