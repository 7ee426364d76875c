#!/usr/bin/env bash
# Builds the Swift package's native part from the Rust sources:
#
#   1. regenerates the bindings (`cargo xtask bindings --release` -> target/bindings/swift/),
#   2. builds the static library `libmultipeer_ffi.a` for iOS devices, the iOS simulator and macOS,
#   3. joins the simulator slices and the macOS slices into universal libraries with `lipo`, and strips their
#      debug symbols and local symbols (an app's own build keeps what it needs for crash reports: the exported
#      symbols),
#   4. packs them with the C header and its module map (module `MultipeerFFIC`) into
#      ffi-swift/MultipeerFFIC.xcframework,
#   5. copies the generated MultipeerFFI.swift into ffi-swift/Sources/MultipeerFFI/,
#   6. zips the XCFramework as ffi-swift/Multipeer.xcframework.zip and prints its SwiftPM checksum, for a release
#      that serves the library from a URL: `.binaryTarget(name: "MultipeerFFIC", url: ..., checksum: ...)`.
#
# None of the outputs is committed. Run it again whenever the Rust code changes. Needs macOS with Xcode, and Rust
# through rustup (missing Apple targets are added). Cargo's build directory is $CARGO_TARGET_DIR when set (relative
# to the repository root, as cargo reads it there), else target/; the generated bindings are always under the
# repository's target/bindings/.
#
# Usage: ffi-swift/build-xcframework.sh
#   MULTIPEER_MACOS_X86_64=0  leave out the Intel macOS slice (faster; Apple silicon Macs only)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

fail() {
    echo "build-xcframework.sh: $*" >&2
    exit 1
}

if [[ "$(uname -s)" != "Darwin" ]]; then
    fail "this script builds Apple libraries and must run on macOS with Xcode (this is $(uname -s)).
The Swift bindings themselves can be generated anywhere with: cargo xtask bindings --release"
fi
if ! xcodebuild -version >/dev/null 2>&1; then
    fail "Xcode is required (xcodebuild does not work; the Command Line Tools alone are not enough).
Install Xcode, then select it: sudo xcode-select -s /Applications/Xcode.app/Contents/Developer"
fi
for tool in cargo rustup lipo xcrun ditto; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' not found on PATH"
done

# Cargo resolves a relative CARGO_TARGET_DIR against the directory it runs in: the repository root here.
target_dir="${CARGO_TARGET_DIR:-target}"
if [[ "$target_dir" != /* ]]; then
    target_dir="$root/$target_dir"
fi

targets=(
    aarch64-apple-ios      # devices
    aarch64-apple-ios-sim  # simulator on Apple silicon
    x86_64-apple-ios       # simulator on Intel
    aarch64-apple-darwin   # macOS on Apple silicon
)
macos_slices=(aarch64-apple-darwin)
if [[ "${MULTIPEER_MACOS_X86_64:-1}" != "0" ]]; then
    targets+=(x86_64-apple-darwin)  # macOS on Intel
    macos_slices+=(x86_64-apple-darwin)
fi
installed="$(rustup target list --installed)"
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        echo "+ rustup target add $target"
        rustup target add "$target"
    fi
done

# Match the package's minimum platforms (Package.swift), so the linker does not warn about newer objects.
export IPHONEOS_DEPLOYMENT_TARGET=15.0
export MACOSX_DEPLOYMENT_TARGET=12.0
# No debug information in the library's own code (release's default, said explicitly); the standard library's
# is stripped below.
export CARGO_PROFILE_RELEASE_DEBUG=0

cd "$root"

echo "+ cargo xtask bindings --release"
cargo xtask bindings --release
bindings="$root/target/bindings/swift"
for file in MultipeerFFI.swift MultipeerFFIC.h MultipeerFFIC.modulemap; do
    [[ -f "$bindings/$file" ]] || fail "the bindings generator did not produce $bindings/$file"
done

for target in "${targets[@]}"; do
    echo "+ cargo rustc -p multipeer-ffi --lib --release --target $target --crate-type staticlib"
    cargo rustc -p multipeer-ffi --lib --release --target "$target" --crate-type staticlib
done

lib="libmultipeer_ffi.a"
work="$target_dir/xcframework"
rm -rf "$work"
mkdir -p "$work/ios" "$work/ios-simulator" "$work/macos" "$work/headers/MultipeerFFIC"

built() {
    local path="$target_dir/$1/release/$lib"
    [[ -f "$path" ]] || fail "cargo did not produce $path"
    echo "$path"
}

echo "+ lipo (iOS simulator, macOS)"
cp "$(built aarch64-apple-ios)" "$work/ios/$lib"
lipo -create "$(built aarch64-apple-ios-sim)" "$(built x86_64-apple-ios)" -output "$work/ios-simulator/$lib"
macos_inputs=()
for target in "${macos_slices[@]}"; do
    macos_inputs+=("$(built "$target")")
done
lipo -create "${macos_inputs[@]}" -output "$work/macos/$lib"

# Static libraries are not linked yet, so cargo's `strip` setting does not apply to them: strip here. -S removes
# debugging symbols, -x local symbols; the global symbols the app's linker needs stay.
for slice in ios ios-simulator macos; do
    before="$(wc -c <"$work/$slice/$lib" | tr -d ' ')"
    xcrun strip -S -x "$work/$slice/$lib" 2>/dev/null || xcrun strip -S "$work/$slice/$lib"
    after="$(wc -c <"$work/$slice/$lib" | tr -d ' ')"
    echo "  stripped $slice: $before -> $after bytes"
done

# The header and the module map go in a folder named after the module: the XCFramework's headers of several
# libraries then do not collide in an app's build, and clang still finds `MultipeerFFIC/module.modulemap`.
cp "$bindings/MultipeerFFIC.h" "$work/headers/MultipeerFFIC/MultipeerFFIC.h"
cp "$bindings/MultipeerFFIC.modulemap" "$work/headers/MultipeerFFIC/module.modulemap"

xcframework="$here/MultipeerFFIC.xcframework"
rm -rf "$xcframework"
echo "+ xcodebuild -create-xcframework -> $xcframework"
xcodebuild -create-xcframework \
    -library "$work/ios/$lib" -headers "$work/headers" \
    -library "$work/ios-simulator/$lib" -headers "$work/headers" \
    -library "$work/macos/$lib" -headers "$work/headers" \
    -output "$xcframework"

mkdir -p "$here/Sources/MultipeerFFI"
cp "$bindings/MultipeerFFI.swift" "$here/Sources/MultipeerFFI/MultipeerFFI.swift"

# The archive for `.binaryTarget(url:checksum:)`: the XCFramework folder at its top level (--keepParent), without
# resource forks or macOS metadata files.
zip="$here/Multipeer.xcframework.zip"
rm -f "$zip"
echo "+ ditto -> $zip"
(cd "$here" && ditto -c -k --norsrc --keepParent "MultipeerFFIC.xcframework" "$zip")
if checksum="$(cd "$here" && swift package compute-checksum "$zip" 2>/dev/null)"; then
    :
else
    # SwiftPM's checksum is the archive's SHA-256.
    checksum="$(shasum -a 256 "$zip" | cut -d ' ' -f 1)"
fi

echo
echo "Built $xcframework and Sources/MultipeerFFI/MultipeerFFI.swift."
echo "Archive: $zip ($(wc -c <"$zip" | tr -d ' ') bytes)"
echo "SwiftPM checksum: $checksum"
echo "To serve it from a release, replace the binary target in Package.swift with:"
echo "    .binaryTarget(name: \"MultipeerFFIC\", url: \"https://<release URL>/Multipeer.xcframework.zip\", checksum: \"$checksum\")"
echo "Test on macOS with: (cd ffi-swift && swift test)"
