#!/usr/bin/env bash
# Every measured figure of the personal cloak that the README and the product show, run
# again from scratch, in the order the report needs them: after any change to the personal
# cloak's algorithm (zones, strengths, refining steps; each such change raises
# veil.personal.PERSONAL_ALGORITHM_VERSION), run this, look at the photos, write the look
# into docs/data/personal/looks.json with that version as its "personal_algorithm", then
# `veil-research personal-report` (which refuses any input of another version).
#
# About two hours on a quiet 2-core machine (the leave-one-out runs enrol every person once
# per left-out recogniser). Steps can be picked by name:
#   build/research/personal_figures.sh [loo] [white-box] [visibility] [video] [report]
set -euo pipefail
cd "$(dirname "$0")/../.."
VR=.venv/bin/veil-research
PY=.venv/bin/python
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(loo white-box visibility video report)

want() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

if want loo; then
  # Leave one out, per recogniser (the README's leave-one-out, JPEG, downscale and
  # "tracker that knows Veil" columns). faceapi_resnet is written faceapi-24.json.
  for attacker in facenet faceapi_resnet mobilefacenet sface; do
    name=${attacker%_resnet}
    stamp "leave one out: $attacker"
    $VR personal --attackers "$attacker" --reencodes none jpeg75 down0.75 \
      --json "docs/data/personal/$name-24.json"
  done
fi
if want white-box; then
  stamp "white-box"  # the README's white-box column
  $VR personal --white-box --reencodes none jpeg75 --adaptive 0 \
    --json docs/data/personal/white-box/all-24.json
fi
if want visibility; then
  stamp "visibility"  # SSIMULACRA2 and FLIP columns, the photos the README names
  $PY build/bench/bench_visibility.py --modes mid --personal light medium strong \
    --photos Matt_Damon/img33.jpg Jennifer_Aniston/img12.jpg scenes/selfie-many-people.jpg \
    Scarlett_Johansson/img49.jpg scenes/couple.jpg Katy_Perry/img26.jpg \
    --json docs/visibility-data/vis-personal-v3.json
fi
if want video; then
  # The README's video frames against photos (docs/video.md, Protection on frames).
  stamp "video frames, shipped"
  $VR video --aligned --personal medium --attackers facenet \
    --crops bench-out/video/crops-aligned-medium.npz \
    --json docs/data/video/video-personal-medium-aligned-24x3.json
  $VR video --rescore bench-out/video/crops-aligned-medium.npz --score-frames 1 \
    --attackers facenet --json docs/data/video/video-personal-medium-aligned-24x3-1frame.json
  stamp "video frames, whole budget"
  $VR video --aligned --personal medium --attackers facenet --whole-track-strength \
    --crops bench-out/video/crops-aligned-medium-whole.npz \
    --json docs/data/video/video-personal-medium-aligned-24x3-whole.json
  $VR video --rescore bench-out/video/crops-aligned-medium-whole.npz --score-frames 1 \
    --attackers facenet --json docs/data/video/video-personal-medium-aligned-24x3-whole-1frame.json
fi
if want report; then
  stamp "report"
  $VR personal-report
fi
stamp "done"
