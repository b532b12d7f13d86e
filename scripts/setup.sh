#!/usr/bin/env bash
# Installs whatever deltatune needs on this machine and builds it. Safe to re-run: every step is
# skipped when it is already done. Used by `npm start`, `npm test` and `npm run bench:*`.
#
#   --test                       also install the test oracle (python3-torch, python3-torchvision,
#                                python3-onnx, chromium):
#                                `npm test` and the benchmarks compare against PyTorch; `npm start`
#                                and the library never need it.
#   LIBTORCH=/path/to/libtorch   build against an unpacked official libtorch (newer, or with CUDA)
#                                instead of Debian's libtorch-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

test_oracle=0
for arg in "$@"; do
  case "$arg" in
    --test) test_oracle=1 ;;
    *) say "unknown option $arg (the only one is --test)"; exit 2 ;;
  esac
done

# --- Debian packages -------------------------------------------------------------------------
# libgloo-dev: the gloo headers native/src/dist.cc includes (ProcessGroupGloo.hpp); libtorch-dev does not pull them in
packages=(libgloo-dev libopenblas0-pthread dataset-fashion-mnist)
# python3-onnx: the ONNX checker; chromium: the browser the exported web page is tested in
[ $test_oracle -eq 0 ] || packages+=(python3-torch python3-torchvision python3-onnx chromium)
[ -n "${LIBTORCH:-}" ] || packages=(libtorch-dev "${packages[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "run this as root, then re-run the command:"
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]} (about a minute)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- BLAS: libtorch must resolve libblas.so.3 to OpenBLAS (the reference BLAS is ~17x slower) --
blas_alt=libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
blas_now=$(update-alternatives --query "$blas_alt" 2>/dev/null | sed -n 's/^Value: //p')
if [[ "$blas_now" != *openblas* ]]; then
  openblas=$(update-alternatives --query "$blas_alt" 2>/dev/null | sed -n 's/^Alternative: //p' | grep openblas | head -n 1)
  if [ -z "$openblas" ]; then
    say "OpenBLAS is not registered as a libblas.so.3 alternative; install libopenblas0-pthread"; exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    say "libblas.so.3 points at ${blas_now:-?}, not OpenBLAS; as root run:"
    echo "  update-alternatives --set $blas_alt $openblas"; exit 1
  fi
  update-alternatives --set "$blas_alt" "$openblas" >/dev/null
  say "switched libblas.so.3 to $openblas"
fi

# --- npm packages ----------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- native addon ----------------------------------------------------------------------------
addon=native/build/Release/deltatune_native.node
stamp=native/build/.libtorch
want="${LIBTORCH:-debian}"
rebuild=0
if [ ! -f "$addon" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then rebuild=1
elif [ -n "$(find native/src native/binding.gyp -newer "$addon" -print -quit)" ]; then rebuild=1; fi
if [ $rebuild -eq 1 ]; then
  if [ -n "${LIBTORCH:-}" ] && [ ! -f "$LIBTORCH/include/torch/csrc/api/include/torch/torch.h" ]; then
    say "LIBTORCH=$LIBTORCH does not look like an unpacked libtorch (no include/torch/csrc/api/include/torch/torch.h)"; exit 1
  fi
  # Build against the headers of the node that runs us, so no header download is needed.
  nodedir=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  nodedir_flag=()
  [ -f "$nodedir/include/node/node_api.h" ] && nodedir_flag=(--nodedir="$nodedir")
  say "building the native addon against ${want} libtorch"
  node node_modules/node-gyp/bin/node-gyp.js rebuild --directory native -j max "${nodedir_flag[@]}" --loglevel=warn >native/build.log 2>&1 \
    || { tail -n 40 native/build.log; say "native build failed (full log: native/build.log)"; exit 1; }
  echo "$want" >"$stamp"
fi

# --- TypeScript ------------------------------------------------------------------------------
# (tsc's own incremental mode mis-resolved Symbol.dispose after some edits; a stamp is simpler.)
stamp_ts=dist/.built
if [ ! -f "$stamp_ts" ] || [ -n "$(find src test bench examples scripts tsconfig.json package.json -newer "$stamp_ts" -print -quit 2>/dev/null)" ]; then
  say "compiling TypeScript"
  node node_modules/typescript/bin/tsc -p tsconfig.json
  touch "$stamp_ts"
fi
