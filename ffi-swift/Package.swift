// swift-tools-version:5.9
//
// The Swift package of multipeer.
//
// Run ./build-xcframework.sh (macOS with Xcode) first: it builds `MultipeerFFIC.xcframework` (the Rust library
// with its C header) and copies the generated `MultipeerFFI.swift` into Sources/MultipeerFFI/. Neither is
// committed; both are regenerated from the Rust sources on every build.

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
        // The generated UniFFI bindings (`Session`, `SessionConfig`, `MultipeerError`, ...).
        .target(
            name: "MultipeerFFI",
            dependencies: ["MultipeerFFIC"],
            path: "Sources/MultipeerFFI"
        ),
        // The Swift API: `MultipeerSession` with an `AsyncStream` of events, and `BonjourDiscovery`.
        .target(
            name: "Multipeer",
            dependencies: ["MultipeerFFI"],
            path: "Sources/Multipeer"
        ),
        .testTarget(
            name: "MultipeerTests",
            dependencies: ["Multipeer"],
            path: "Tests/MultipeerTests"
        ),
    ]
)
