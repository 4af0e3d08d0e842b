#!/usr/bin/env bash
# Energy distance of 2000 samples against fresh data, for each sampler and
# step count, on the shipped models; and each model's negative ELBO.
# Usage: tools/report_samplers.sh [path/to/microdiffusion]   (prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${1:-build/release/tools/microdiffusion}
models="swissroll moons 8gaussians"
configs=(
  "ddpm|--sampler ddpm"            "ddpm 50|--sampler ddpm --steps 50"
  "ddim 50|--sampler ddim --steps 50"  "ddim 20|--sampler ddim --steps 20"
  "ddim 10|--sampler ddim --steps 10"
  "dpm++2m 20|--sampler dpm++2m --steps 20 --spacing logsnr"
  "dpm++2m 10|--sampler dpm++2m --steps 10 --spacing logsnr"
  "ode 20|--sampler ode --steps 20" "ode 10|--sampler ode --steps 10"
)
printf '| sampler (steps) |'
for m in $models; do printf ' %s |' "$m"; done
printf '\n|---|'
for m in $models; do printf -- '---|'; done
printf '\n'
for c in "${configs[@]}"; do
  name=${c%%|*}; flags=${c#*|}
  printf '| %s |' "$name"
  for m in $models; do
    # shellcheck disable=SC2086
    ed=$("$cli" sample --model weights/$m.mdw --n 2000 --seed 1 $flags --out /dev/null 2>&1 |
         sed -n 's/^energy_distance=\([0-9.]*\).*/\1/p')
    printf ' %s |' "$ed"
  done
  printf '\n'
done
printf '| **negative ELBO** (nats/dim ± s.e., 1000 points) |'
for m in $models; do
  out=$("$cli" eval --model weights/$m.mdw --n 1000)
  nll=$(echo "$out" | sed -n 's/^nll_nats_per_dim=//p'); se=$(echo "$out" | sed -n 's/^nll_stderr=//p')
  printf ' %.3f ± %.3f |' "$nll" "$se"
done
printf '\n'
