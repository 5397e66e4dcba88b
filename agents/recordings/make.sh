#!/usr/bin/env bash
# Caller recordings for the shipped agent: synthetic callers made with espeak-ng and sox.
#
# Usage:  agents/recordings/make.sh        (from anywhere; writes next to this script)
#
# Idempotent: every run rebuilds the same three files from scratch, byte for byte (sox runs in
# repeatable mode, -R, so its noise generator and dither are seeded with a fixed value).
#
# Exactly how each file is made:
#   voice        espeak-ng -v en-us -s 150   (US English, 150 words per minute, default pitch)
#   resampling   sox "rate -v" from espeak-ng's 22050 Hz to 16000 Hz, mono, 16-bit signed PCM
#   level        speech normalised to a peak of -3 dBFS (sox "gain -n -3")
#   padding      0.5 s of silence before the first word, 1.5 s after the last
#                (two_questions.wav: 3.0 s of silence between its two questions)
#   noise floor  white noise with a peak amplitude of -60 dBFS (sox "synth whitenoise vol 0.001",
#                about -70 dBFS RMS) mixed under the whole file, so the silence is not digital
#                zero, as in any real microphone signal
#   output       16000 Hz, 1 channel, 16-bit signed little-endian WAV
#
# Transcripts (keep README.md in step):
#   capital.wav        "Hi! What is the capital of France?"
#   weather.wav        "Can you suggest something fun to do on a rainy afternoon?"
#   two_questions.wav  "What is the capital of France?" ... 3 s ... "And how many people live there?"
set -euo pipefail

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make.sh: $tool is required" >&2; exit 1; }
done

OUT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RATE=16000
VOICE=en-us
WPM=150
LEAD=0.5        # seconds of silence before the speech
TAIL=1.5        # seconds of silence after the speech
GAP=3.0         # seconds between the two questions of two_questions.wav
NOISE_VOL=0.001 # white-noise peak amplitude: 0.001 = -60 dBFS

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# speak NAME TEXT: $TMP/NAME.wav, the bare speech at 16 kHz mono 16-bit, peak -3 dBFS, no padding.
speak() {
    espeak-ng -v "$VOICE" -s "$WPM" -w "$TMP/$1.raw.wav" "$2"
    # espeak-ng leaves a little silence at both ends; trim it so the padding below is exact.
    sox -R "$TMP/$1.raw.wav" -r "$RATE" -c 1 -b 16 "$TMP/$1.wav" \
        silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse \
        rate -v "$RATE" gain -n -3
}

# finish NAME PARTS...: pad, concatenate (with a GAP of silence between parts), add the noise
# floor and write $OUT/NAME.wav.
finish() {
    local name="$1"; shift
    local inputs=() first=1 part
    for part in "$@"; do
        if (( first )); then
            first=0
        else
            sox -R -n -r "$RATE" -c 1 -b 16 "$TMP/$name.gap.wav" trim 0 "$GAP"
            inputs+=("$TMP/$name.gap.wav")
        fi
        inputs+=("$TMP/$part.wav")
    done
    sox -R "${inputs[@]}" "$TMP/$name.speech.wav" pad "$LEAD" "$TAIL"
    local length
    length="$(soxi -D "$TMP/$name.speech.wav")"
    sox -R -n -r "$RATE" -c 1 -b 16 "$TMP/$name.noise.wav" synth "$length" whitenoise vol "$NOISE_VOL"
    # -m mixes; -v 1 on each input keeps both at their own level (sox would otherwise halve them).
    sox -R -m -v 1 "$TMP/$name.speech.wav" -v 1 "$TMP/$name.noise.wav" \
        -r "$RATE" -c 1 -b 16 -e signed-integer "$OUT/$name.wav"
    printf '%-18s %6.2f s\n' "$name.wav" "$(soxi -D "$OUT/$name.wav")"
}

speak capital "Hi! What is the capital of France?"
speak weather "Can you suggest something fun to do on a rainy afternoon?"
speak q1 "What is the capital of France?"
speak q2 "And how many people live there?"

finish capital capital
finish weather weather
finish two_questions q1 q2
