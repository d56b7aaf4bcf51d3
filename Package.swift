// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "SafeNeuron",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "safeneuron", targets: ["safeneuron"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"4.0.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "Tensors", dependencies: ["COpenBLAS"]),
        .target(name: "ModelFiles"),
        .target(name: "Tokenization"),
        .target(name: "Transformer", dependencies: ["Tensors"]),
        .target(name: "Runtime", dependencies: ["Tensors", "ModelFiles", "Tokenization", "Transformer"]),
        .target(name: "SafetyNeurons", dependencies: ["Tensors", "ModelFiles", "Transformer", "Runtime"]),
        .target(name: "Alignment", dependencies: ["Tensors", "ModelFiles", "Transformer", "Runtime"]),
        .target(name: "Evaluation", dependencies: ["Tensors", "ModelFiles", "Tokenization", "Transformer", "Runtime",
                                                  .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Pipeline", dependencies: ["Tensors", "Runtime", "ModelFiles", "Transformer", "SafetyNeurons", "Alignment", "Evaluation",
                                                .product(name: "Yams", package: "Yams"),
                                                .product(name: "Mustache", package: "swift-mustache")]),
        .executableTarget(name: "safeneuron", dependencies: [
            "Tensors", "ModelFiles", "Tokenization", "Transformer", "Runtime",
            "SafetyNeurons", "Alignment", "Evaluation", "Pipeline",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "ModelFilesTests", dependencies: ["ModelFiles"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizationTests", dependencies: ["Tokenization"], exclude: ["Fixtures"]),
        .target(name: "TrainingFixtureSupport", dependencies: ["Tensors", "Transformer"], path: "Tests/TrainingFixtureSupport"),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "Tensors", "TrainingFixtureSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime"], exclude: ["Fixtures"]),
        .testTarget(name: "SafetyNeuronsTests", dependencies: ["SafetyNeurons"], exclude: ["Fixtures"]),
        .testTarget(name: "AlignmentTests", dependencies: ["Alignment", "Runtime", "Tokenization", "TrainingFixtureSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Tensors"], exclude: ["Fixtures"]),
        .target(name: "TinyModelSupport", dependencies: ["ModelFiles", "Tensors"], path: "Tests/TinyModelSupport"),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "Evaluation", "TinyModelSupport"]),
        .testTarget(name: "ReliabilityTests", dependencies: ["Runtime", "ModelFiles", "Tokenization", "Transformer", "Evaluation", "SafetyNeurons", "TinyModelSupport"]),
    ],
    // Numeric kernels hand raw buffers to concurrentPerform; Swift 5 mode keeps that legal
    // without wrapping every pointer in a Sendable box.
    swiftLanguageModes: [.v5]
)
