#!/usr/bin/env bash
# The browser test drives Debian's Chromium. Install it when it is missing and we may (root + apt).
# Otherwise say why; the test then skips with that reason.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser test..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "Could not install chromium; the browser test will be skipped."
else
  echo "chromium is not installed and cannot be installed here (needs root and apt-get);" \
       "install it to run the browser test."
fi
exit 0
