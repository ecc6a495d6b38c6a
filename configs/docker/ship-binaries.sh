#!/usr/bin/env bash
# Dockerfile helper: copy the given binaries (stripped) and exactly the shared
# libraries they load, minus what the base image already has (glibc,
# libstdc++, libgcc), into a folder, for a runtime stage to COPY --from.
# Usage: ship-binaries.sh OUT build/bin/cd-serve build/bin/cd-predict
set -euo pipefail
out=${1:?usage: ship-binaries.sh OUT BINARY...}
shift
mkdir -p "$out/usr/local/bin" "$out/usr/local/lib/catdog" "$out/etc/ld.so.conf.d"
cp "$@" "$out/usr/local/bin/"
strip "$out"/usr/local/bin/*
for lib in $(ldd "$@" | awk '/=> \//{print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux* | libgcc_s.so* | libstdc++.so*) ;;
    *) cp -L "$lib" "$out/usr/local/lib/catdog/" ;;
  esac
done
echo /usr/local/lib/catdog >"$out/etc/ld.so.conf.d/catdog.conf"
