#!/usr/bin/env bash
# The demo: build, train the default model on the swiss roll, draw 2000
# samples over the data (samples.png) and the denoising trajectory
# (trajectory.png). Needs only cmake and a C++17 compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DMD_BUILD_TESTS=OFF -DMD_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" --target microdiffusion_cli
cli=build/demo/tools/microdiffusion
"$cli" train --data swissroll --out swissroll.mdw
"$cli" sample --model swissroll.mdw --n 2000 --out samples.csv --png samples.png --trajectory trajectory.png
echo "wrote swissroll.mdw, samples.csv, samples.png and trajectory.png"
