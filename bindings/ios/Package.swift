// swift-tools-version:5.9
// The Swift package apps add for Kith (template: scripts/package-ios.sh copies
// it into its output directory beside KithFFI.xcframework and the generated
// Sources/Kith/kith_ffi.swift, then checks it with `swift package describe`).
//
// To publish it, upload KithFFI.xcframework.zip (the script prints its
// checksum) and replace the local binary target below with:
//     .binaryTarget(name: "kith_ffiFFI",
//                   url: "https://example.invalid/kith/KithFFI.xcframework.zip",
//                   checksum: "<the checksum the script printed>"),
import PackageDescription

let package = Package(
    name: "Kith",
    // uniffi's async support and the generated code need iOS 13; 15 is the
    // oldest the project tests against (bindings/README.md, "iOS").
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Kith", targets: ["Kith"]),
    ],
    targets: [
        // The Rust library (static, one slice per platform) and the C module
        // `kith_ffiFFI` that the generated Swift file imports.
        .binaryTarget(name: "kith_ffiFFI", path: "KithFFI.xcframework"),
        // The generated bindings (and any hand-written Swift shipped with them).
        .target(name: "Kith", dependencies: ["kith_ffiFFI"], path: "Sources/Kith"),
    ]
)
