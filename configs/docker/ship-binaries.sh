#!/usr/bin/env bash
# Dockerfile helper: copy the given binaries (stripped) and exactly the shared
# libraries they load into a folder, for an image stage to COPY --from.
#   ship-binaries.sh OUT BINARY...
#       for an image on a Debian base: the libraries go to /usr/local/lib/catdog
#       (an ld.so.conf.d entry names it), minus what the base already has
#       (glibc, libstdc++, libgcc).
#   ship-binaries.sh --root OUT BINARY...
#       a whole root filesystem, for an image FROM scratch: glibc and the
#       dynamic loader too, at the paths ld.so searches without a cache, plus
#       what the image's users run besides the binaries (bash for the
#       HEALTHCHECK, sleep for Kubernetes' preStop hook, the few coreutils a
#       batch Job's shell line calls), the CA bundle for an HTTPS tracking
#       server, a passwd entry for uid 10001, a /tmp and a /models.
# The libraries are the ones ldd resolves here, so LD_LIBRARY_PATH picks
# among alternatives (the Makefile's reference BLAS for OpenCV's core).
set -euo pipefail
root=0
if [[ ${1:-} == --root ]]; then root=1; shift; fi
out=${1:?usage: ship-binaries.sh [--root] OUT BINARY...}
shift
(($# > 0)) || { echo "ship-binaries.sh: no binaries given" >&2; exit 2; }

mkdir -p "$out/usr/local/bin"
cp "$@" "$out/usr/local/bin/"
strip "$out"/usr/local/bin/*

if ((root == 0)); then
  mkdir -p "$out/usr/local/lib/catdog" "$out/etc/ld.so.conf.d"
  for lib in $(ldd "$@" | awk '/=> \//{print $3}' | sort -u); do
    case "$(basename "$lib")" in
      libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux* | libgcc_s.so* | libstdc++.so*) ;;
      *) cp -L "$lib" "$out/usr/local/lib/catdog/" ;;
    esac
  done
  echo /usr/local/lib/catdog >"$out/etc/ld.so.conf.d/catdog.conf"
  exit 0
fi

# --root: Debian's merged /usr, so /bin/bash and /lib64/ld-linux-x86-64.so.2
# (every binary's interpreter) resolve as on Debian.
tools=()
for tool in bash sleep cat ls mkdir mv rm; do tools+=("$(command -v "$tool")"); done
libdir=$out/usr/lib/x86_64-linux-gnu
mkdir -p "$out/usr/bin" "$libdir" "$out/usr/lib64" "$out/etc/ssl/certs" "$out/tmp" "$out/models"
ln -sfn usr/bin "$out/bin"
ln -sfn usr/lib "$out/lib"
ln -sfn usr/lib64 "$out/lib64"
cp -L "${tools[@]}" "$out/usr/bin/"
for lib in $(ldd "$@" "${tools[@]}" | awk '/=> \//{print $3}' | sort -u); do
  cp -L "$lib" "$libdir/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$out/usr/lib64/"
chmod 1777 "$out/tmp"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ncatdog:x:10001:10001:catdog:/nonexistent:/usr/sbin/nologin\n' \
  >"$out/etc/passwd"
printf 'root:x:0:\ncatdog:x:10001:\n' >"$out/etc/group"
printf 'hosts: files dns\n' >"$out/etc/nsswitch.conf"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/"
else
  echo "ship-binaries.sh: no /etc/ssl/certs/ca-certificates.crt here; the image cannot verify HTTPS" >&2
fi
