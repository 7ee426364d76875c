// swift-tools-version:6.0
//
// The Swift package of multipeer.
//
// Run ./build-xcframework.sh (macOS with Xcode) first: it builds `MultipeerFFIC.xcframework` (the Rust library
// with its C header) and copies the generated `MultipeerFFI.swift` into Sources/MultipeerFFI/. Neither is
// committed; both are regenerated from the Rust sources on every build. The script also packs the XCFramework as
// Multipeer.xcframework.zip and prints its checksum, for a release that serves it from a URL (see README.md).

import PackageDescription

let package = Package(
    name: "Multipeer",
    platforms: [
        .iOS(.v15),
        .macOS(.v12),
    ],
    products: [
        .library(name: "Multipeer", targets: ["Multipeer"]),
    ],
    targets: [
        // The Rust static library for iOS, the iOS simulator and macOS, with the C header of its FFI
        // (module `MultipeerFFIC`). SwiftPM requires the XCFramework's file name to match the target name.
        .binaryTarget(
            name: "MultipeerFFIC",
            path: "MultipeerFFIC.xcframework"
        ),
        // The generated UniFFI bindings (`Session`, `SessionConfig`, `MultipeerError`, ...). Their types declare
        // their own `Sendable` conformances; the file is compiled in the Swift 5 language mode because it is
        // generated code this package does not edit, so a diagnostic that a newer compiler adds to it cannot
        // break the build. Everything written by hand below uses the Swift 6 language mode.
        .target(
            name: "MultipeerFFI",
            dependencies: ["MultipeerFFIC"],
            path: "Sources/MultipeerFFI",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        // The Swift API: `MultipeerSession` (events for any number of consumers, an observable model),
        // `BonjourDiscovery`, `MultipeerLog`, and the privacy manifest of the whole package.
        .target(
            name: "Multipeer",
            dependencies: ["MultipeerFFI"],
            path: "Sources/Multipeer",
            resources: [.copy("PrivacyInfo.xcprivacy")]
        ),
        .testTarget(
            name: "MultipeerTests",
            dependencies: ["Multipeer"],
            path: "Tests/MultipeerTests"
        ),
    ],
    swiftLanguageModes: [.v6]
)
