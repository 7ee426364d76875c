#!/usr/bin/env bash
# Builds the Swift package's native part from the Rust sources:
#
#   1. regenerates the bindings (`cargo xtask bindings --release` -> target/bindings/swift/),
#   2. builds the static library `libmultipeer_ffi.a` for iOS devices, the iOS simulator and macOS,
#   3. joins the simulator slices and the macOS slices into universal libraries with `lipo`,
#   4. packs them with the C header and its module map (module `MultipeerFFIC`) into
#      ffi-swift/MultipeerFFIC.xcframework,
#   5. copies the generated MultipeerFFI.swift into ffi-swift/Sources/MultipeerFFI/.
#
# Neither output is committed. Run it again whenever the Rust code changes. Needs macOS with Xcode, and Rust
# through rustup (missing Apple targets are added).
#
# Usage: ffi-swift/build-xcframework.sh
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
for tool in cargo rustup lipo; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' not found on PATH"
done

targets=(
    aarch64-apple-ios      # devices
    aarch64-apple-ios-sim  # simulator on Apple silicon
    x86_64-apple-ios       # simulator on Intel
    aarch64-apple-darwin   # macOS on Apple silicon
    x86_64-apple-darwin    # macOS on Intel
)
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

cd "$root"

echo "+ cargo xtask bindings --release"
cargo xtask bindings --release
bindings="$root/target/bindings/swift"
for file in MultipeerFFI.swift MultipeerFFIC.h MultipeerFFIC.modulemap; do
    [[ -f "$bindings/$file" ]] || fail "the bindings generator did not produce $bindings/$file"
done

for target in "${targets[@]}"; do
    echo "+ cargo build -p multipeer-ffi --release --target $target"
    cargo build -p multipeer-ffi --release --target "$target"
done

lib="libmultipeer_ffi.a"
work="$root/target/xcframework"
rm -rf "$work"
mkdir -p "$work/ios-simulator" "$work/macos" "$work/headers/MultipeerFFIC"

echo "+ lipo (iOS simulator, macOS)"
lipo -create \
    "target/aarch64-apple-ios-sim/release/$lib" \
    "target/x86_64-apple-ios/release/$lib" \
    -output "$work/ios-simulator/$lib"
lipo -create \
    "target/aarch64-apple-darwin/release/$lib" \
    "target/x86_64-apple-darwin/release/$lib" \
    -output "$work/macos/$lib"

# The header and the module map go in a folder named after the module: the XCFramework's headers of several
# libraries then do not collide in an app's build, and clang still finds `MultipeerFFIC/module.modulemap`.
cp "$bindings/MultipeerFFIC.h" "$work/headers/MultipeerFFIC/MultipeerFFIC.h"
cp "$bindings/MultipeerFFIC.modulemap" "$work/headers/MultipeerFFIC/module.modulemap"

xcframework="$here/MultipeerFFIC.xcframework"
rm -rf "$xcframework"
echo "+ xcodebuild -create-xcframework -> $xcframework"
xcodebuild -create-xcframework \
    -library "target/aarch64-apple-ios/release/$lib" -headers "$work/headers" \
    -library "$work/ios-simulator/$lib" -headers "$work/headers" \
    -library "$work/macos/$lib" -headers "$work/headers" \
    -output "$xcframework"

mkdir -p "$here/Sources/MultipeerFFI"
cp "$bindings/MultipeerFFI.swift" "$here/Sources/MultipeerFFI/MultipeerFFI.swift"

echo "Built $xcframework and Sources/MultipeerFFI/MultipeerFFI.swift."
echo "Test on macOS with: (cd ffi-swift && swift test)"
