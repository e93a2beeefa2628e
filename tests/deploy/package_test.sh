#!/bin/bash
# package_test.sh BUILD_DIR: `cmake --install` puts exactly crudcast, its unit (ExecStart pointing at
# the installed binary), the example config and the README in the usual places, and
# `cpack -G DEB` makes a .deb with those files under /usr and Depends found by dpkg-shlibdeps.
set -euo pipefail
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for tool in cmake cpack dpkg-deb dpkg-shlibdeps file; do
  command -v "$tool" >/dev/null || fail "$tool not found (deploy/install-deps.sh installs it)"
done

expected_files() {  # $1: prefix as it appears in the listing
  printf '%s\n' "$1/bin/crudcast" "$1/lib/systemd/system/crudcast.service" \
    "$1/share/doc/crudcast/README.md" "$1/share/doc/crudcast/crudcast.example.yaml"
}

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" --component crudcast >/dev/null
diff <(cd "$work" && find prefix -type f | sort) <(expected_files prefix) || fail "cmake --install files differ"
grep -qx "ExecStart=$prefix/bin/crudcast" "$prefix/lib/systemd/system/crudcast.service" ||
  fail "installed unit does not start $prefix/bin/crudcast"
"$prefix/bin/crudcast" --version | grep -q '^crudcast ' || fail "installed crudcast does not run"
echo "ok: cmake --install"

(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack failed"; }
debs=("$work"/pkg/*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "expected one .deb, got: ${debs[*]}"
deb=${debs[0]}
echo "package: ${deb##*/}"
diff <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print $6}' | sort) <(expected_files ./usr) ||
  fail "the .deb holds other files"
[[ $(dpkg-deb -f "$deb" Package) == crudcast ]] || fail "package name"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for library in libc6 libstdc++6 libyaml-cpp0.7; do
  [[ $depends == *"$library"* ]] || fail "Depends lacks $library"
done
dpkg-deb -x "$deb" "$work/root"
grep -qx 'ExecStart=/usr/bin/crudcast' "$work/root/usr/lib/systemd/system/crudcast.service" ||
  fail "packaged unit does not start /usr/bin/crudcast"
"$work/root/usr/bin/crudcast" --version | grep -q '^crudcast ' || fail "packaged crudcast does not run"
echo "ok: cpack -G DEB"
